//! The built-in offline model: deterministic, instant, and honest about it.
//!
//! It is not a language model. It answers every chat with a fixed-form reply
//! that says what it is, how many tokens it was sent and a short echo of the
//! prompt, so local mode works with no endpoint and no download. Its token
//! counts are real: prompt and reply are tokenized with the cl100k_base BPE
//! (the OpenAI GPT-4-era tokenizer), and `max_tokens` truncates the reply at a
//! token boundary, exactly as a real model's limit would.

use async_trait::async_trait;
use tiktoken_rs::CoreBPE;

use super::{ChatReply, ChatRequest, Model, ModelError};
use crate::cost::Usage;
use crate::ticket::ModelId;

/// Tokens of the prompt echoed back.
const ECHO_TOKENS: usize = 24;
/// Per-message framing tokens, as in OpenAI's chat format (role and separators).
const TOKENS_PER_MESSAGE: u32 = 3;

#[derive(Debug)]
pub struct BuiltinModel {
    id: ModelId,
}

impl BuiltinModel {
    pub const NAME: &'static str = "builtin";

    pub fn new() -> Self {
        Self {
            id: ModelId::parse(Self::NAME).expect("valid model id"),
        }
    }

    fn bpe() -> &'static CoreBPE {
        tiktoken_rs::cl100k_base_singleton()
    }

    /// The reply and its usage; a pure function of the request.
    pub fn reply(request: &ChatRequest) -> ChatReply {
        let bpe = Self::bpe();
        let mut input_tokens = 3; // every reply is primed with <|start|>assistant<|message|>
        let mut last_user = Vec::new();
        for m in &request.messages {
            let tokens = bpe.encode_ordinary(&m.content);
            input_tokens += TOKENS_PER_MESSAGE + tokens.len() as u32;
            if m.role == "user" {
                last_user = tokens;
            }
        }
        let echo_len = last_user.len().min(ECHO_TOKENS);
        let echo =
            String::from_utf8_lossy(&bpe.decode_bytes(&last_user[..echo_len]).unwrap_or_default())
                .into_owned();
        let ellipsis = if last_user.len() > ECHO_TOKENS {
            "…"
        } else {
            ""
        };
        let text = format!(
            "[builtin offline model, deterministic] Received {input_tokens} prompt tokens. You said: \"{}{ellipsis}\"",
            echo.trim()
        );
        let mut out = bpe.encode_ordinary(&text);
        let text = match request.max_tokens {
            Some(max) if out.len() > max as usize => {
                out.truncate(max as usize);
                String::from_utf8_lossy(&bpe.decode_bytes(&out).unwrap_or_default()).into_owned()
            }
            _ => text,
        };
        ChatReply {
            text,
            usage: Usage {
                input_tokens,
                output_tokens: out.len() as u32,
            },
            reported_model: Some(Self::NAME.to_owned()),
        }
    }
}

impl Default for BuiltinModel {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Model for BuiltinModel {
    fn id(&self) -> &ModelId {
        &self.id
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, ModelError> {
        Ok(Self::reply(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChatMessage;

    fn ask(prompt: &str, max_tokens: Option<u32>) -> ChatReply {
        BuiltinModel::reply(&ChatRequest {
            messages: vec![ChatMessage {
                role: "user".into(),
                content: prompt.into(),
            }],
            max_tokens,
        })
    }

    #[test]
    fn counts_real_tokens() {
        // "hello world" is two cl100k tokens; +3 framing +3 priming.
        let r = ask("hello world", None);
        assert_eq!(r.usage.input_tokens, 8);
        let out = tiktoken_rs::cl100k_base_singleton()
            .encode_ordinary(&r.text)
            .len() as u32;
        assert_eq!(r.usage.output_tokens, out);
        assert!(r.text.contains("hello world") && r.text.contains("builtin"));
    }

    #[test]
    fn is_deterministic() {
        assert_eq!(ask("same prompt", None), ask("same prompt", None));
    }

    #[test]
    fn max_tokens_truncates_at_a_token_boundary() {
        let r = ask(
            "a long enough prompt to make the reply longer than five tokens",
            Some(5),
        );
        assert_eq!(r.usage.output_tokens, 5);
        assert!(r.text.len() < 40, "{}", r.text);
    }
}
