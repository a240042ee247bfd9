//! The surface contract: typed commands, events and errors, and their servers.
//!
//! Every surface — the HTTP/WebSocket API ([`http`]), the `oshal` CLI (through
//! [`client`]) and the desktop app — speaks these types. Whatever crosses the
//! boundary derives `specta::Type`, so the UI's TypeScript is generated, not
//! written. There is one error shape a caller may see, [`ApiError`]: it names
//! the field and the limit for bad input and hides internals for bugs.

pub mod client;
pub mod http;

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::controller::ControllerError;
use crate::store::StoreError;
use crate::ticket::TicketError;

/// What went wrong, as a caller may branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is not well-formed (not JSON, wrong types).
    Malformed,
    Unauthorized,
    NotFound,
    /// The ticket's state does not allow this.
    IllegalTransition,
    TooLarge,
    /// A field is present and well-formed but not acceptable.
    Invalid,
    BudgetExhausted,
    UnknownTenant,
    Overloaded,
    StoreUnavailable,
    ShuttingDown,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            Self::Malformed => 400,
            Self::Unauthorized => 401,
            Self::NotFound => 404,
            Self::IllegalTransition => 409,
            Self::TooLarge => 413,
            Self::Invalid | Self::BudgetExhausted | Self::UnknownTenant => 422,
            Self::Overloaded => 429,
            Self::StoreUnavailable | Self::ShuttingDown => 503,
            Self::Internal => 500,
        }
    }
}

/// The one error every surface shows: `{"error": {kind, message, field?, limit?}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// The envelope errors travel in.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
pub struct ErrorBody {
    pub error: ApiError,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            field: None,
            limit: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }
}

impl From<TicketError> for ApiError {
    fn from(e: TicketError) -> Self {
        let message = e.to_string();
        match e {
            TicketError::Invalid { field, .. } => {
                ApiError::new(ErrorKind::Invalid, message).field(field)
            }
            TicketError::TooLarge { field, limit, .. } => {
                ApiError::new(ErrorKind::TooLarge, message)
                    .field(field)
                    .limit(limit as u64)
            }
            TicketError::IllegalTransition { .. } | TicketError::AttemptsExhausted { .. } => {
                ApiError::new(ErrorKind::IllegalTransition, message)
            }
        }
    }
}

impl From<ControllerError> for ApiError {
    fn from(e: ControllerError) -> Self {
        let message = e.to_string();
        match e {
            ControllerError::Invalid(t) => t.into(),
            ControllerError::NotFound(_) => ApiError::new(ErrorKind::NotFound, message),
            ControllerError::UnknownTenant(_) => {
                ApiError::new(ErrorKind::UnknownTenant, message).field("tenant")
            }
            ControllerError::BudgetExhausted { .. } => {
                ApiError::new(ErrorKind::BudgetExhausted, message).field("tenant")
            }
            ControllerError::Overloaded { limit, .. } => {
                ApiError::new(ErrorKind::Overloaded, message).limit(limit as u64)
            }
            ControllerError::Store(StoreError::Closed) | ControllerError::ShuttingDown => {
                ApiError::new(ErrorKind::ShuttingDown, message)
            }
            ControllerError::Store(e) => {
                tracing::error!(error = %e, "store error surfaced to a caller");
                ApiError::new(
                    ErrorKind::StoreUnavailable,
                    "the store is unavailable; nothing was changed, retry later",
                )
            }
            other => {
                tracing::error!(error = %other, "internal error surfaced to a caller");
                ApiError::new(ErrorKind::Internal, "internal error; see the server log")
            }
        }
    }
}
