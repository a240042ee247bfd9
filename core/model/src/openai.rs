//! A provider for any server that speaks OpenAI's chat-completions API.
//!
//! Plain and streamed (server-sent events) replies; usage is taken from the
//! reply (for streams, from the final chunk that `stream_options.include_usage`
//! asks for). A reply without usage is malformed: cost must be captured, so
//! the call fails rather than being recorded as free. Every network wait has a
//! timeout: the whole plain request, and for streams the first byte and each
//! gap between chunks.

use async_trait::async_trait;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

use super::{ChatReply, ChatRequest, Model, ModelError};
use crate::cost::Usage;
use crate::ticket::ModelId;

/// The most of an error body quoted back in an error.
const MAX_QUOTED_BODY: usize = 300;

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Base URL up to and including `/v1`, e.g. `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// The model name sent to the server.
    pub remote_model: String,
    /// The id the price table knows this model by.
    pub price_id: ModelId,
    pub stream: bool,
    pub connect_timeout: Duration,
    /// The whole request (plain), or the wait for the first byte (stream).
    pub request_timeout: Duration,
    /// The longest gap between two stream chunks.
    pub idle_timeout: Duration,
    /// The reply's token limit when a ticket sets none: a runaway reply
    /// costs money and holds its bot (`None`: the server's own default).
    pub default_max_tokens: Option<u32>,
}

impl OpenAiConfig {
    pub fn new(
        base_url: impl Into<String>,
        remote_model: impl Into<String>,
        price_id: ModelId,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            remote_model: remote_model.into(),
            price_id,
            stream: false,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(30),
            default_max_tokens: None,
        }
    }
}

pub struct OpenAiCompatible {
    config: OpenAiConfig,
    url: String,
    api_key: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is deliberately absent.
        f.debug_struct("OpenAiCompatible")
            .field("url", &self.url)
            .field("model", &self.config.remote_model)
            .finish()
    }
}

impl OpenAiCompatible {
    pub fn new(config: OpenAiConfig, api_key: Option<String>) -> Result<Self, ModelError> {
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ModelError::Config(format!(
                "base URL {base:?} must start with http:// or https://"
            )));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| ModelError::Config(e.to_string()))?;
        Ok(Self {
            url: format!("{base}/chat/completions"),
            config,
            api_key,
            client,
        })
    }

    fn body(&self, request: &ChatRequest) -> serde_json::Value {
        let mut body = json!({
            "model": self.config.remote_model,
            "messages": request.messages,
            "stream": self.config.stream,
        });
        if let Some(schema) = &request.response_schema {
            // OpenAI's structured output; llama.cpp's server turns the schema
            // into a grammar, so even a small model answers parsable JSON.
            // Not `strict`: OpenAI's strict mode takes only schemas whose
            // every property is required; llama.cpp constrains either way.
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": { "name": "reply", "strict": false, "schema": schema },
            });
        }
        if let Some(n) = request.max_tokens.or(self.config.default_max_tokens) {
            body["max_tokens"] = json!(n);
        }
        if self.config.stream {
            body["stream_options"] = json!({ "include_usage": true });
        }
        body
    }

    async fn send(&self, request: &ChatRequest) -> Result<reqwest::Response, ModelError> {
        let mut req = self.client.post(&self.url).json(&self.body(request));
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let response = match tokio::time::timeout(self.config.request_timeout, req.send()).await {
            Err(_) => {
                return Err(ModelError::Timeout {
                    what: "request",
                    after: self.config.request_timeout,
                });
            }
            Ok(Err(e)) if e.is_timeout() => {
                return Err(ModelError::Timeout {
                    what: "connect",
                    after: self.config.connect_timeout,
                });
            }
            Ok(Err(e)) => {
                return Err(self.connection_error(&e));
            }
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if !status.is_success() {
            let body = tokio::time::timeout(self.config.idle_timeout, response.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(ModelError::Status {
                status: status.as_u16(),
                body: quote(&body),
            });
        }
        Ok(response)
    }

    /// The endpoint went away mid-call (refused, reset, closed early).
    fn connection_error(&self, e: &reqwest::Error) -> ModelError {
        ModelError::Connect {
            endpoint: self.url.clone(),
            message: without_url(e),
        }
    }

    async fn chat_plain(&self, request: &ChatRequest) -> Result<ChatReply, ModelError> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        let response = self.send(request).await?;
        let bytes = match tokio::time::timeout_at(deadline, response.bytes()).await {
            Err(_) => {
                return Err(ModelError::Timeout {
                    what: "reply body",
                    after: self.config.request_timeout,
                });
            }
            Ok(Err(e)) => {
                return Err(self.connection_error(&e));
            }
            Ok(Ok(b)) => b,
        };
        parse_plain(&bytes)
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatReply, ModelError> {
        let response = self.send(request).await?;
        let mut stream = response.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let mut acc = StreamAccumulator::default();
        loop {
            let chunk = match tokio::time::timeout(self.config.idle_timeout, stream.next()).await {
                Err(_) => {
                    return Err(ModelError::Timeout {
                        what: "stream chunk",
                        after: self.config.idle_timeout,
                    });
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(self.connection_error(&e));
                }
                Ok(Some(Ok(c))) => c,
            };
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if acc.line(&line)? {
                    return acc.finish();
                }
            }
        }
        if !buf.is_empty() {
            acc.line(&buf)?;
        }
        acc.finish()
    }
}

#[async_trait]
impl Model for OpenAiCompatible {
    fn id(&self) -> &ModelId {
        &self.config.price_id
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, ModelError> {
        if self.config.stream {
            self.chat_stream(request).await
        } else {
            self.chat_plain(request).await
        }
    }
}

#[derive(Deserialize)]
struct WireUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

#[derive(Deserialize)]
struct PlainReply {
    model: Option<String>,
    choices: Vec<PlainChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct PlainChoice {
    message: PlainMessage,
    finish_reason: Option<String>,
}

/// OpenAI's `finish_reason` for a reply that stopped at its token limit.
const FINISH_LENGTH: &str = "length";

#[derive(Deserialize)]
struct PlainMessage {
    content: Option<String>,
}

/// Parses a non-streamed chat-completions reply.
pub fn parse_plain(bytes: &[u8]) -> Result<ChatReply, ModelError> {
    let reply: PlainReply = serde_json::from_slice(bytes).map_err(|e| {
        ModelError::Malformed(format!(
            "not a chat-completions reply ({e}): {}",
            quote(&String::from_utf8_lossy(bytes))
        ))
    })?;
    let usage = reply.usage.ok_or_else(|| {
        ModelError::Malformed("reply has no usage; cost cannot be captured".into())
    })?;
    let choice = reply
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| ModelError::Malformed("reply has no choices".into()))?;
    Ok(ChatReply {
        text: choice.message.content.unwrap_or_default(),
        usage: Usage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        },
        reported_model: reply.model,
        cut: choice.finish_reason.as_deref() == Some(FINISH_LENGTH),
    })
}

#[derive(Deserialize)]
struct StreamChunk {
    model: Option<String>,
    #[serde(default)]
    choices: Vec<StreamChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct StreamChoice {
    delta: Option<StreamDelta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct StreamDelta {
    content: Option<String>,
}

/// Folds server-sent-event lines of a streamed reply into one reply.
#[derive(Default)]
pub struct StreamAccumulator {
    text: String,
    usage: Option<Usage>,
    model: Option<String>,
    chunks: usize,
    cut: bool,
}

impl StreamAccumulator {
    /// Takes one line; returns `true` at `data: [DONE]`.
    pub fn line(&mut self, raw: &[u8]) -> Result<bool, ModelError> {
        let line = std::str::from_utf8(raw)
            .map_err(|_| ModelError::Malformed("stream line is not UTF-8".into()))?
            .trim();
        if line.is_empty()
            || line.starts_with(':')
            || line.starts_with("event:")
            || line.starts_with("id:")
        {
            return Ok(false);
        }
        let Some(data) = line.strip_prefix("data:") else {
            return Err(ModelError::Malformed(format!(
                "unexpected stream line: {}",
                quote(line)
            )));
        };
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        let chunk: StreamChunk = serde_json::from_str(data).map_err(|e| {
            ModelError::Malformed(format!("stream chunk is not JSON ({e}): {}", quote(data)))
        })?;
        self.chunks += 1;
        if chunk.model.is_some() {
            self.model = chunk.model;
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.and_then(|d| d.content) {
                self.text.push_str(&text);
            }
            if let Some(reason) = choice.finish_reason {
                self.cut = reason == FINISH_LENGTH;
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Some(Usage {
                input_tokens: u.prompt_tokens,
                output_tokens: u.completion_tokens,
            });
        }
        Ok(false)
    }

    pub fn finish(self) -> Result<ChatReply, ModelError> {
        if self.chunks == 0 {
            return Err(ModelError::Malformed(
                "stream ended before any chunk".into(),
            ));
        }
        let usage = self.usage.ok_or_else(|| {
            ModelError::Malformed("stream ended without usage; cost cannot be captured".into())
        })?;
        Ok(ChatReply {
            text: self.text,
            usage,
            reported_model: self.model,
            cut: self.cut,
        })
    }
}

fn quote(s: &str) -> String {
    let s = s.trim();
    if s.len() <= MAX_QUOTED_BODY {
        return format!("{s:?}");
    }
    format!("{:?}…", crate::text::clip(s, MAX_QUOTED_BODY))
}

fn without_url(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    if let Some(url) = e.url() {
        msg = msg.replace(url.as_str(), "").replace(" ()", "");
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_without_a_token_limit_gets_the_default_and_one_with_keeps_its_own() {
        let mut config =
            OpenAiConfig::new("http://127.0.0.1:1/v1", "m", ModelId::parse("m").unwrap());
        let ask = |max_tokens| ChatRequest {
            messages: vec![],
            max_tokens,
            response_schema: None,
        };
        let limit = |config: &OpenAiConfig, max_tokens| {
            OpenAiCompatible::new(config.clone(), None)
                .unwrap()
                .body(&ask(max_tokens))
                .get("max_tokens")
                .cloned()
        };
        assert_eq!(limit(&config, None), None, "no default: the server's");
        config.default_max_tokens = Some(512);
        assert_eq!(limit(&config, None), Some(json!(512)));
        assert_eq!(limit(&config, Some(16)), Some(json!(16)));
    }

    #[test]
    fn plain_reply_with_usage() {
        let r = parse_plain(br#"{"model":"m","choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#).unwrap();
        assert_eq!(r.text, "hi");
        assert!(!r.cut, "no finish_reason: not cut");
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 5,
                output_tokens: 2
            }
        );
    }

    #[test]
    fn a_reply_stopped_at_its_token_limit_is_cut() {
        let plain = |reason: &str| {
            parse_plain(format!(r#"{{"choices":[{{"message":{{"content":"{{\"a\": [1,"}},"finish_reason":"{reason}"}}],"usage":{{"prompt_tokens":5,"completion_tokens":4}}}}"#).as_bytes())
                .unwrap()
        };
        assert!(plain("length").cut);
        assert!(!plain("stop").cut);
        let mut acc = StreamAccumulator::default();
        acc.line(br#"data: {"choices":[{"delta":{"content":"{\"a\": ["}}]}"#)
            .unwrap();
        acc.line(br#"data: {"choices":[{"delta":{},"finish_reason":"length"}]}"#)
            .unwrap();
        acc.line(br#"data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#)
            .unwrap();
        let r = acc.finish().unwrap();
        assert!(r.cut && r.text == "{\"a\": [", "{r:?}");
    }

    #[test]
    fn plain_reply_without_usage_is_malformed() {
        let e = parse_plain(br#"{"choices":[{"message":{"content":"hi"}}]}"#).unwrap_err();
        assert!(e.to_string().contains("no usage"), "{e}");
        assert!(e.retryable());
    }

    #[test]
    fn garbage_is_quoted_and_bounded() {
        let garbage = "<html>".repeat(200);
        let e = parse_plain(garbage.as_bytes()).unwrap_err().to_string();
        assert!(
            e.starts_with("malformed model reply: not a chat-completions reply"),
            "{e}"
        );
        assert!(e.len() < 500, "{}", e.len());
    }

    #[test]
    fn stream_folds_deltas_and_final_usage() {
        let mut acc = StreamAccumulator::default();
        let lines = [
            ": keep-alive",
            r#"data: {"model":"m","choices":[{"delta":{"role":"assistant"}}]}"#,
            r#"data: {"choices":[{"delta":{"content":"Hel"}}]}"#,
            "",
            r#"data: {"choices":[{"delta":{"content":"lo"}}]}"#,
            r#"data: {"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#,
        ];
        for l in lines {
            assert!(!acc.line(l.as_bytes()).unwrap());
        }
        assert!(acc.line(b"data: [DONE]").unwrap());
        let r = acc.finish().unwrap();
        assert_eq!(
            (r.text.as_str(), r.usage),
            (
                "Hello",
                Usage {
                    input_tokens: 9,
                    output_tokens: 2
                }
            )
        );
    }

    #[test]
    fn stream_without_usage_fails() {
        let mut acc = StreamAccumulator::default();
        acc.line(br#"data: {"choices":[{"delta":{"content":"x"}}]}"#)
            .unwrap();
        assert!(
            acc.finish()
                .unwrap_err()
                .to_string()
                .contains("without usage")
        );
        let mut acc = StreamAccumulator::default();
        assert!(acc.line(b"data: {not json").is_err());
    }

    #[test]
    fn status_classification() {
        assert!(
            ModelError::Status {
                status: 503,
                body: String::new()
            }
            .retryable()
        );
        assert!(
            ModelError::Status {
                status: 429,
                body: String::new()
            }
            .retryable()
        );
        assert!(
            !ModelError::Status {
                status: 400,
                body: String::new()
            }
            .retryable()
        );
        assert!(
            !ModelError::Status {
                status: 401,
                body: String::new()
            }
            .retryable()
        );
    }
}
