//! The journal as the store keeps it: books of numbered entries that the
//! platform's adapters write and read back. The `desk` book holds each
//! paper session's (what it was opened with, each operator action on it);
//! the `workflow` book each workflow run's history.
//!
//! The store does not read the bodies: they are the adapter's JSON, kept
//! as text. An entry is written once: `(session, seq)` is the key, and a
//! second write of the same number reports that it was taken, so two
//! writers cannot both think they recorded the same step. On PostgreSQL
//! the rows are the tenant's, under row-level security.

use crate::clock::UnixMs;
use crate::ticket::TenantId;

/// One entry of a session's journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// Whose entries: `desk`, `workflow`.
    pub book: String,
    /// The session (a paper session's id, a run's id) within the book.
    pub session: String,
    /// From 0, without gaps, in the order the entries happened.
    pub seq: u32,
    pub tenant: TenantId,
    /// What the entry records (`opened`, `kill`, …): the adapter's word.
    pub kind: String,
    /// The adapter's JSON.
    pub body: String,
    pub at_ms: UnixMs,
}

/// The most bytes one entry's body may hold.
pub const MAX_BODY: usize = 64 * 1024;

/// An entry the store will not take, named by its field.
pub(crate) fn check(e: &JournalEntry) -> Result<(), crate::StoreError> {
    let refuse = |field: &str, reason: String| {
        Err(crate::StoreError::Invalid(format!(
            "journal entry {field}: {reason}"
        )))
    };
    if e.book.is_empty() || e.book.len() > 16 {
        return refuse("book", "must be 1 to 16 bytes".into());
    }
    if e.session.is_empty() || e.session.len() > 64 {
        return refuse("session", "must be 1 to 64 bytes".into());
    }
    if e.kind.is_empty() || e.kind.len() > 32 {
        return refuse("kind", "must be 1 to 32 bytes".into());
    }
    if e.body.len() > MAX_BODY || e.body.contains('\0') {
        return refuse(
            "body",
            format!("must be at most {MAX_BODY} bytes, without NUL"),
        );
    }
    Ok(())
}
