//! Model providers behind one trait.
//!
//! Owns turning a chat request into a reply with token usage. Two providers:
//! [`builtin::BuiltinModel`], an offline deterministic model so the default
//! install works with no endpoint, and [`openai::OpenAiCompatible`], any
//! server speaking OpenAI's chat-completions API (llama.cpp's llama-server,
//! Ollama, vLLM, OpenAI), plain or streamed. A model never prices its own
//! usage: the controller does that (see `cost/`). Cancelling a call is dropping
//! its future; both providers are cancellation-safe.

use oshal_kernel::{cost, text, ticket};

pub mod builtin;
pub mod openai;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use specta::Type;
use std::time::Duration;

use crate::cost::Usage;
use crate::ticket::{ChatPayload, ModelId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub max_tokens: Option<u32>,
    /// A JSON Schema the reply must follow, where the model supports one.
    pub response_schema: Option<serde_json::Value>,
}

impl ChatRequest {
    pub fn from_payload(p: &ChatPayload) -> Self {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &p.system {
            messages.push(ChatMessage {
                role: "system".into(),
                content: system.clone(),
            });
        }
        messages.push(ChatMessage {
            role: "user".into(),
            content: p.prompt.clone(),
        });
        Self {
            messages,
            max_tokens: p.max_tokens,
            response_schema: p.response_schema.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatReply {
    pub text: String,
    pub usage: Usage,
    /// The model name the server reported, if it did.
    pub reported_model: Option<String>,
    /// The model stopped at its token limit (OpenAI's `finish_reason`
    /// `length`: `max_tokens` or the server's context), so the text may end
    /// mid-sentence, or mid-JSON.
    pub cut: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    #[error("model endpoint {endpoint} unreachable: {message}")]
    Connect { endpoint: String, message: String },
    #[error("model {what} timed out after {after:?}")]
    Timeout { what: &'static str, after: Duration },
    #[error("model endpoint answered HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("malformed model reply: {0}")]
    Malformed(String),
    #[error("model configuration: {0}")]
    Config(String),
}

impl ModelError {
    /// Whether another attempt could succeed: network trouble, server errors,
    /// rate limits and garbage replies are worth retrying; a request the
    /// server refuses (4xx) is not.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Malformed(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Self::Config(_) => false,
        }
    }
}

/// A language model a bot can run.
#[async_trait]
pub trait Model: Send + Sync + std::fmt::Debug {
    /// The id the price table knows this model by.
    fn id(&self) -> &ModelId;
    /// Runs one chat completion. Cancellation-safe: dropping the future
    /// abandons the call (and its connection).
    async fn chat(&self, request: &ChatRequest) -> Result<ChatReply, ModelError>;
}
