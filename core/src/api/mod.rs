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
    /// The controller this client is attached to cannot be reached.
    Unreachable,
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
            Self::Unreachable => 502,
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
    #[specta(type = Option<specta_typescript::Number>)]
    pub limit: Option<u64>,
}

/// How many tickets are in one state (the lifecycle diagram's numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
pub struct StateCount {
    pub state: crate::ticket::TicketState,
    #[specta(type = specta_typescript::Number)]
    pub count: u64,
}

/// The lifecycle diagram's numbers, as every surface answers them.
pub async fn state_counts(
    controller: &crate::controller::Controller,
) -> Result<Vec<StateCount>, ApiError> {
    Ok(controller
        .state_counts()
        .await?
        .into_iter()
        .map(|(state, n)| StateCount {
            state,
            count: u64::try_from(n).unwrap_or(0),
        })
        .collect())
}

/// A ticket list's filters as a surface sends them (query parameters over
/// HTTP, a command argument in the app): all optional text, checked here so
/// every surface refuses the same input with the same field named.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type)]
pub struct TicketFilter {
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub bot: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// 1..=1000; 100 if absent.
    #[serde(default)]
    pub limit: Option<String>,
}

impl TicketFilter {
    pub fn query(&self) -> Result<crate::store::TicketQuery, ApiError> {
        use crate::store::MAX_PAGE;
        use crate::ticket::{BotId, TenantId, TicketId, TicketState};
        let invalid =
            |field: &str, msg: String| ApiError::new(ErrorKind::Invalid, msg).field(field);
        let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let state = match given(&self.state) {
            None => None,
            Some(s) => Some(TicketState::parse(&s).ok_or_else(|| {
                let known: Vec<_> = TicketState::ALL.iter().map(|s| s.as_str()).collect();
                invalid(
                    "state",
                    format!("unknown state {s:?}; known states: {}", known.join(", ")),
                )
            })?),
        };
        let limit = match given(&self.limit) {
            None => 100,
            Some(l) => match l.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(invalid("limit", format!("{l:?} is outside 1..={MAX_PAGE}"))
                        .limit(u64::from(MAX_PAGE)));
                }
            },
        };
        let cursor = match given(&self.cursor) {
            None => None,
            Some(c) => Some(TicketId::parse(&c).map_err(|_| {
                invalid(
                    "cursor",
                    format!("{c:?} is not a cursor from a previous page"),
                )
            })?),
        };
        Ok(crate::store::TicketQuery {
            state,
            tenant: given(&self.tenant)
                .map(|t| TenantId::parse(&t))
                .transpose()?,
            bot: given(&self.bot).map(|b| BotId::parse(&b)).transpose()?,
            kind: given(&self.kind),
            cursor,
            limit,
        })
    }
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

impl From<crate::connector::ConnectorError> for ApiError {
    fn from(e: crate::connector::ConnectorError) -> Self {
        use crate::connector::ConnectorError as C;
        let message = e.to_string();
        match e {
            C::Manifest(m) => ApiError::new(ErrorKind::Invalid, message).field(m.field),
            C::Invalid { field, .. } => ApiError::new(ErrorKind::Invalid, message).field(field),
            C::NotFound(_) => ApiError::new(ErrorKind::NotFound, message),
            C::Db(_) => {
                tracing::error!(error = %message, "connector store failed");
                ApiError::new(
                    ErrorKind::StoreUnavailable,
                    "the connector store is unavailable",
                )
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
