//! What a ticket's end tells whoever waits on it, read narrowly: its
//! state and attempts, its answer or error, what it cost and when it
//! started and last moved. A workflow run reads thousands of these a
//! second; [`crate::Store::tickets_by_id`] would read each ticket's
//! payload, every event and every ledger row to give the same. The
//! stores read them a few hundred (SQLite) or a tenant (PostgreSQL) a
//! statement.

use crate::TicketView;
use crate::clock::UnixMs;
use crate::ticket::{TicketId, TicketState};

#[derive(Debug, Clone, PartialEq)]
pub struct TicketEnd {
    pub id: TicketId,
    pub kind: String,
    pub state: TicketState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    /// The sum of its ledger rows.
    pub cost_nusd: i64,
    /// Its first move to running, if it has made one.
    pub started_at_ms: Option<UnixMs>,
    pub updated_at_ms: UnixMs,
}

impl TicketEnd {
    /// The same, from the whole view.
    pub fn of(view: &TicketView) -> TicketEnd {
        TicketEnd {
            id: view.id,
            kind: view.kind.clone(),
            state: view.state,
            attempts: view.attempts,
            max_attempts: view.max_attempts,
            result: view.result.clone(),
            error: view.error.clone(),
            cost_nusd: view.cost.cost_nusd,
            started_at_ms: view
                .events
                .iter()
                .find(|t| t.to == TicketState::Running)
                .map(|t| t.at_ms),
            updated_at_ms: view.updated_at_ms,
        }
    }
}
