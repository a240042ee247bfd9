//! The Security Center: the detective layer over the preventive controls.
//!
//! Each preventive control (tenant row-level security, least-privilege
//! database roles, no credential in the clear, trusted connectors, token-only
//! surfaces, fail-closed execution) is bound to checks ([`checks`]) that
//! prove, against the running platform, that it holds: the PostgreSQL
//! catalog and a live canary ([`postgres`]), the secret scan over files and
//! stored text ([`secrets`]), the connectors, the API listeners and probes
//! the gate and broker must refuse ([`platform`]).
//!
//! What a scan sees becomes findings with a stable fingerprint (tool + rule +
//! object, never a line number), kept in SQLite ([`store`]) and triaged
//! ([`triage`]): a new finding files a ticket that a bot triages, an
//! unchanged one changes nothing, one gone for `resolve_after` scans is
//! resolved, one that comes back is reopened with a follow-up ticket (a
//! ticket is immutable once finished, so the follow-up's parent is the
//! earlier one). Suppressions carry a justification and an expiry. Findings
//! go out and come in as SARIF 2.1.0 ([`sarif`]), so Trivy, Checkov or
//! Semgrep results land in the same findings and tickets.
//!
//! No finding, message or ticket ever holds a secret: the secret scan
//! reports rule, place and length only.

mod center;
pub mod checks;
mod model;
pub mod platform;
pub mod postgres;
pub mod sarif;
pub mod secrets;
pub mod store;
#[cfg(test)]
mod tests;
pub mod triage;

pub use crate::secrets::Severity;
pub use center::*;
pub use model::*;
pub use store::SecurityDb;
