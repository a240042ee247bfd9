//! The built-in offline model: deterministic, instant, and honest about it.
//!
//! It is not a language model. It answers every chat with a fixed-form reply
//! that says what it is, how many tokens it was sent and a short echo of the
//! prompt, so local mode works with no endpoint and no download. Its token
//! counts are real, in the cl100k_base BPE (the OpenAI GPT-4-era tokenizer):
//! the prompt is tokenized, and the reply is produced as a token sequence and
//! decoded to text, the way a model generates, so `output_tokens` is exactly
//! what it generated and `max_tokens` cuts at a token boundary.

use async_trait::async_trait;
use std::sync::OnceLock;
use tiktoken_rs::{CoreBPE, Rank};

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
        let parts = Parts::get();
        let echo_len = last_user.len().min(ECHO_TOKENS);
        let mut out = Vec::with_capacity(parts.prefix.len() + parts.mid.len() + echo_len + 8);
        out.extend_from_slice(&parts.prefix);
        out.extend(bpe.encode_ordinary(&format!(" {input_tokens}")));
        out.extend_from_slice(&parts.mid);
        out.extend_from_slice(&last_user[..echo_len]);
        out.extend_from_slice(if last_user.len() > ECHO_TOKENS {
            &parts.cut
        } else {
            &parts.end
        });
        let cut = request
            .max_tokens
            .is_some_and(|max| out.len() > max as usize);
        if let Some(max) = request.max_tokens {
            out.truncate(max as usize);
        }
        let text =
            String::from_utf8_lossy(&bpe.decode_bytes(&out).unwrap_or_default()).into_owned();
        ChatReply {
            text,
            usage: Usage {
                input_tokens,
                output_tokens: out.len() as u32,
            },
            reported_model: Some(Self::NAME.to_owned()),
            cut,
        }
    }
}

/// The fixed pieces of every reply, tokenized once.
struct Parts {
    prefix: Vec<Rank>,
    mid: Vec<Rank>,
    cut: Vec<Rank>,
    end: Vec<Rank>,
}

impl Parts {
    fn get() -> &'static Parts {
        static PARTS: OnceLock<Parts> = OnceLock::new();
        PARTS.get_or_init(|| {
            let bpe = BuiltinModel::bpe();
            Parts {
                prefix: bpe.encode_ordinary("[builtin offline model, deterministic] Received"),
                mid: bpe.encode_ordinary(" prompt tokens. You said: \""),
                cut: bpe.encode_ordinary("…\""),
                end: bpe.encode_ordinary("\""),
            }
        })
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
    use crate::ChatMessage;

    fn ask(prompt: &str, max_tokens: Option<u32>) -> ChatReply {
        BuiltinModel::reply(&ChatRequest {
            messages: vec![ChatMessage {
                role: "user".into(),
                content: prompt.into(),
            }],
            max_tokens,
            response_schema: None,
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
        assert!(r.cut, "stopped at its limit");
        assert!(!ask("short", Some(500)).cut && !ask("short", None).cut);
    }
}
