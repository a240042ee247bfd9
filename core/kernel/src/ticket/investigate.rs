//! What kind `investigate` carries: a Gather ticket of the operations
//! loop. Its bot makes the planned read-only calls of one connector (the
//! platform's `oshal-ops`) through the connector gate, in order, within
//! the bounds, and brings back each call as evidence. The ticket holds
//! only the grants the controller bound to it, so the box is the broker's,
//! not the prompt's. The shape and the bounds are checked here, at the
//! edge.

use serde::{Deserialize, Serialize};
use specta::Type;

use super::TicketError;

/// The most calls one investigation plans.
pub const MAX_INVESTIGATE_CALLS: usize = 32;
/// The longest one investigation may run.
pub const MAX_INVESTIGATE_WALL_MS: u64 = 600_000;
/// The most model tokens one investigation may spend.
pub const MAX_INVESTIGATE_TOKENS: u32 = 100_000;

/// One planned call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlannedCall {
    /// An operation of the connector (`get_bots`).
    pub operation: String,
    #[serde(default = "super::empty_object")]
    #[specta(type = specta_typescript::Unknown)]
    pub params: serde_json::Value,
}

/// A Gather ticket's work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvestigatePayload {
    /// The incident it serves (`INC-3`).
    pub incident: String,
    /// The alert it looks into (its `alertname`).
    pub alert: String,
    /// The connector its calls go to.
    pub connector: String,
    /// 1..=32 calls, made in order.
    #[schema(min_items = 1, max_items = 32)]
    pub calls: Vec<PlannedCall>,
    /// 1..=32, and at least as many as it plans to make.
    #[schema(minimum = 1, maximum = 32)]
    pub max_steps: u32,
    /// 1..=600,000.
    #[specta(type = specta_typescript::Number)]
    #[schema(minimum = 1, maximum = 600000)]
    pub max_wall_ms: u64,
    /// 0..=100,000 model tokens for the narrative (0: no narrative).
    #[schema(maximum = 100000)]
    pub max_tokens: u32,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl InvestigatePayload {
    /// The checks of the shape and the bounds, each naming its field.
    pub fn check(&self) -> Result<(), TicketError> {
        let invalid = |field, reason: String| TicketError::Invalid { field, reason };
        let plain = |s: &str| !s.is_empty() && s.len() <= 128 && !s.contains('\0');
        if !plain(&self.incident) {
            return Err(invalid(
                "payload.incident",
                "must be 1 to 128 bytes, without NUL".into(),
            ));
        }
        if !plain(&self.alert) {
            return Err(invalid(
                "payload.alert",
                "must be 1 to 128 bytes, without NUL".into(),
            ));
        }
        if !is_name(&self.connector) {
            return Err(invalid(
                "payload.connector",
                format!("{:?} must be 1 to 64 of a-z, 0-9, '-', '_'", self.connector),
            ));
        }
        if self.calls.is_empty() || self.calls.len() > MAX_INVESTIGATE_CALLS {
            return Err(invalid(
                "payload.calls",
                format!(
                    "holds {}; it must hold 1 to {MAX_INVESTIGATE_CALLS}",
                    self.calls.len()
                ),
            ));
        }
        for (i, c) in self.calls.iter().enumerate() {
            if !is_name(&c.operation) {
                return Err(invalid(
                    "payload.calls",
                    format!(
                        "calls[{i}].operation {:?} must be 1 to 64 of a-z, 0-9, '-', '_'",
                        c.operation
                    ),
                ));
            }
            if !c.params.is_object() {
                return Err(invalid(
                    "payload.calls",
                    format!("calls[{i}].params must be a JSON object"),
                ));
            }
        }
        if !(1..=MAX_INVESTIGATE_CALLS as u32).contains(&self.max_steps)
            || (self.max_steps as usize) < self.calls.len()
        {
            return Err(invalid(
                "payload.max_steps",
                format!(
                    "{} must be 1..={MAX_INVESTIGATE_CALLS} and at least the {} calls planned",
                    self.max_steps,
                    self.calls.len()
                ),
            ));
        }
        if !(1..=MAX_INVESTIGATE_WALL_MS).contains(&self.max_wall_ms) {
            return Err(invalid(
                "payload.max_wall_ms",
                format!(
                    "{} is outside 1..={MAX_INVESTIGATE_WALL_MS}",
                    self.max_wall_ms
                ),
            ));
        }
        if self.max_tokens > MAX_INVESTIGATE_TOKENS {
            return Err(invalid(
                "payload.max_tokens",
                format!("{} is over {MAX_INVESTIGATE_TOKENS}", self.max_tokens),
            ));
        }
        Ok(())
    }
}
