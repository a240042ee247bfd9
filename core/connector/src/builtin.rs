//! Built-in connectors: the platform's own data, served in process.
//!
//! A built-in is a manifest the platform compiles in and mounts at start
//! ([`crate::Connectors::mount`]) with a [`BuiltIn`] handler that answers its
//! operations. It needs no credential and no network: the runtime runs the
//! gate exactly as for any connector (grants, scopes, rate, budget, audit),
//! then asks the handler instead of the broker and HTTP, and treats the
//! answer as an outside system's (redacted, clipped, a status of 400 or more
//! refused). A built-in's write runs only under a grant bound to the
//! calling ticket (one an approval mints): without one the call answers
//! `approval_required`, whatever else the bot holds.
//!
//! Its manifest's `base_url` is a name, not an address: `oshal://<id>`
//! ([`crate::manifest::BUILT_IN_SCHEME`]; only a built-in may use it), or a
//! placeholder URL any manifest could hold; its `auth` is required by
//! the format and never used. A handler must never reach outside the
//! platform on a bot's behalf: that is what brokered connectors are for.

use async_trait::async_trait;

use crate::call::CallRef;

/// What answers a built-in connector's operations.
#[async_trait]
pub trait BuiltIn: Send + Sync + std::fmt::Debug {
    /// Answers one read of `call.operation` with these (already
    /// schema-checked) params: an HTTP-like status and a JSON body.
    async fn read(
        &self,
        call: &CallRef,
        params: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value), String>;

    /// Applies one write of `call.operation`, allowed by a grant bound to
    /// the ticket. `key` is its idempotency key, the same on every attempt
    /// of the ticket: a write already applied under it answers as it did,
    /// unchanged. The effect ledger keeps the answer, so a settled write is
    /// replayed without asking again; the handler sees a key twice only
    /// when the first outcome was lost.
    async fn write(
        &self,
        call: &CallRef,
        params: &serde_json::Value,
        key: &str,
    ) -> Result<(u16, serde_json::Value), String> {
        let _ = (params, key);
        Err(format!(
            "{}.{}: this built-in connector does not write",
            call.connector, call.operation
        ))
    }
}

#[cfg(test)]
mod tests;
