//! Every `From<…> for ApiError`: how each domain's error reaches a caller
//! (a refusal names its field and limit; an outage is a 503 to retry; a
//! bug is "internal", with the detail in the server's log alone).

use super::{ApiError, ErrorKind};
use crate::controller::ControllerError;
use crate::security::SecurityError;
use crate::store::StoreError;
use crate::ticket::TicketError;

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
            _ => ApiError::new(ErrorKind::Invalid, message),
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
            // The data itself, not the store's health: not a 503.
            C::Db(e) if e.is_refused_data() => {
                tracing::warn!(error = %message, "connector store refused a request's data");
                ApiError::new(ErrorKind::Invalid, message)
            }
            C::Db(_) => {
                tracing::error!(error = %message, "connector store failed");
                ApiError::new(
                    ErrorKind::StoreUnavailable,
                    "the connector store is unavailable",
                )
            }
            _ => {
                tracing::error!(error = %message, "connector error surfaced to a caller");
                ApiError::new(ErrorKind::Internal, "internal error; see the server log")
            }
        }
    }
}

impl From<SecurityError> for ApiError {
    fn from(e: SecurityError) -> Self {
        let message = e.to_string();
        match e {
            SecurityError::Invalid { field, .. } => {
                ApiError::new(ErrorKind::Invalid, message).field(field)
            }
            SecurityError::NotFound(_) => ApiError::new(ErrorKind::NotFound, message),
            SecurityError::Conflict(_) => {
                ApiError::new(ErrorKind::IllegalTransition, message).field("id")
            }
            SecurityError::TooLarge(field, limit) => ApiError::new(ErrorKind::TooLarge, message)
                .field(field)
                .limit(limit as u64),
            SecurityError::Db(_) => {
                tracing::error!(error = %message, "security store failed");
                ApiError::new(
                    ErrorKind::StoreUnavailable,
                    "the security store is unavailable",
                )
            }
        }
    }
}

impl From<crate::trading::TradingError> for ApiError {
    fn from(e: crate::trading::TradingError) -> Self {
        use crate::trading::TradingError as T;
        let message = e.to_string();
        match e {
            T::Invalid { field, .. } => ApiError::new(ErrorKind::Invalid, message).field(field),
            T::NotFound(_) => ApiError::new(ErrorKind::NotFound, message),
            T::Ended(_) | T::Conflict(_) => ApiError::new(ErrorKind::IllegalTransition, message),
            T::Controller(e) => e.into(),
            T::Store(e) => ControllerError::Store(e).into(),
        }
    }
}

impl From<crate::workflow::WorkflowError> for ApiError {
    fn from(e: crate::workflow::WorkflowError) -> Self {
        use crate::workflow::WorkflowError as W;
        let message = e.to_string();
        match e {
            W::Spec(issues) => {
                let error = ApiError::new(ErrorKind::Invalid, message);
                match issues.into_iter().next() {
                    Some(first) => error.field(first.path),
                    None => error,
                }
            }
            W::Invalid { field, .. } => ApiError::new(ErrorKind::Invalid, message).field(field),
            W::NotFound(_) => ApiError::new(ErrorKind::NotFound, message),
            W::Conflict(_) => ApiError::new(ErrorKind::IllegalTransition, message),
            W::Forbidden(_) => ApiError::new(ErrorKind::Forbidden, message),
            W::TooMany(_) => ApiError::new(ErrorKind::Overloaded, message)
                .limit(crate::workflow::MAX_LIVE_RUNS as u64),
            W::Controller(e) => e.into(),
            W::Store(e) => ControllerError::Store(e).into(),
        }
    }
}

impl From<crate::ops::OpsError> for ApiError {
    fn from(e: crate::ops::OpsError) -> Self {
        use crate::ops::OpsError as O;
        let message = e.to_string();
        match e {
            O::Refused(r) => {
                let error = ApiError::new(ErrorKind::Invalid, message).field(r.path);
                match r.limit {
                    Some(n) => error.limit(n),
                    None => error,
                }
            }
            O::Invalid(i) => {
                let error = ApiError::new(ErrorKind::Invalid, message).field(i.path);
                match i.limit {
                    Some(n) => error.limit(n),
                    None => error,
                }
            }
            O::NotFound(_) => ApiError::new(ErrorKind::NotFound, message),
            O::Conflict(_) => ApiError::new(ErrorKind::IllegalTransition, message),
            O::Controller(e) => e.into(),
            // A record the store refuses for its data: sending it again
            // cannot help, so it is no 503 a sender would retry forever.
            O::Store(e @ StoreError::Invalid(_)) => {
                ApiError::new(ErrorKind::Invalid, e.to_string())
            }
            O::Store(e) => ControllerError::Store(e).into(),
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
            // The data itself, not the store's health: retrying the same
            // request cannot help, so it is not a 503.
            ControllerError::Store(e @ StoreError::Rejected { .. }) => {
                tracing::warn!(error = %e, "store refused a request's data");
                ApiError::new(ErrorKind::Invalid, e.to_string())
            }
            ControllerError::Store(e) => {
                tracing::error!(error = %e, "store error surfaced to a caller");
                ApiError::new(
                    ErrorKind::StoreUnavailable,
                    "the store is unavailable; retry later, with the same idempotency key for a submission (it then runs once)",
                )
            }
            other => {
                tracing::error!(error = %other, "internal error surfaced to a caller");
                ApiError::new(ErrorKind::Internal, "internal error; see the server log")
            }
        }
    }
}

impl From<crate::mesh::MeshError> for ApiError {
    fn from(e: crate::mesh::MeshError) -> Self {
        use crate::mesh::{Failure, MeshError as M};
        let message = e.to_string();
        match e {
            M::Refused(r) => {
                let error = ApiError::new(ErrorKind::Invalid, message).field(r.path);
                match r.limit {
                    Some(n) => error.limit(n),
                    None => error,
                }
            }
            M::NotConfigured(_) | M::NoKey => ApiError::new(ErrorKind::NotFound, message),
            M::NeedsConfirm { .. } => {
                ApiError::new(ErrorKind::IllegalTransition, message).field("confirm")
            }
            M::Source(Failure::Failed { status, .. }) if (400..500).contains(&status) => {
                ApiError::new(ErrorKind::Invalid, message)
            }
            M::Source(_) => ApiError::new(ErrorKind::Unreachable, message),
            M::Backend(_) => {
                tracing::error!(error = %message, "secret backend failed for the mesh");
                ApiError::new(
                    ErrorKind::Internal,
                    "the secret backend failed; see the server log",
                )
            }
        }
    }
}
