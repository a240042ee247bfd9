//! What the controller shows its surfaces: the event stream, a bot with its
//! lane, health, and the counters `/metrics` reads. Plain data, serialised
//! as the API and the app send it; never decides anything.

use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::clock::UnixMs;
use crate::cost::LedgerEntry;
use crate::lane::LaneStats;
use crate::ticket::{BotId, ModelId, Skill, TenantId, TicketId, Transition};

/// The one event stream every surface follows (Tauri events in the app,
/// WebSocket in the browser). High-rate feeds travel as batches: one event
/// per group commit, not one per ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoreEvent {
    /// Ticket transitions that just became durable, in order.
    TicketsTransitioned { transitions: Vec<Transition> },
    /// Ledger rows that just became durable.
    CostCaptured { entries: Vec<LedgerEntry> },
    /// How far a running attempt is, as its bot reports (media work): a
    /// heartbeat, with a figure 0..=100 when the work knows one. Not kept.
    TicketProgress {
        ticket: TicketId,
        tenant: TenantId,
        attempt: u32,
        progress: Option<u8>,
        #[specta(type = specta_typescript::Number)]
        at_ms: UnixMs,
    },
    /// Bots, their lanes and their load (about once a second).
    BotsUpdated { bots: Vec<BotView> },
    /// A subscriber fell behind and missed this many events (0 on a
    /// tenant's socket, where the count would tell of other tenants'
    /// traffic); either way it resyncs.
    Lagged {
        #[specta(type = specta_typescript::Number)]
        missed: u64,
    },
}

/// A bot as the surfaces show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct BotView {
    pub id: BotId,
    pub skills: Vec<Skill>,
    pub model: ModelId,
    /// The node process hosting it; `None` for the local pool.
    pub node: Option<String>,
    pub live: bool,
    pub in_flight: u32,
    #[specta(type = specta_typescript::Number)]
    pub succeeded: u64,
    #[specta(type = specta_typescript::Number)]
    pub failed: u64,
    /// The median time of its attempts that ended on their own in the
    /// last five minutes, start to result (`None`: none did).
    #[specta(type = Option<specta_typescript::Number>)]
    pub attempt_ms: Option<u64>,
    /// Its lane's figures; `None` when they could not be read (Redis
    /// unreachable): unknown, which is not an empty, healthy lane.
    pub lane: Option<LaneStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Health {
    pub ok: bool,
    /// `ok`, `unavailable` or `shutting_down`: a code, never the store's
    /// error text (the route answers without a token).
    pub store: String,
    pub bots_live: u32,
    pub version: String,
    /// Why the store is not `ok`: only for a caller holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What retiring a lost node did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retired {
    /// Its bots, forgotten: out of the bots' view until one registers
    /// again.
    Forgot(Vec<BotId>),
    /// Some of its bots are live: a node that answers is not lost.
    Live(Vec<BotId>),
    /// Every bot of it is retired already.
    Already,
    /// No bot of it is known (never, or not since the controller started).
    Unknown,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub submitted: AtomicU64,
    pub refused: AtomicU64,
    pub commits: AtomicU64,
    pub committed_rows: AtomicU64,
    pub transitions: AtomicU64,
    pub ledger_rows: AtomicU64,
    pub cost_nusd: AtomicU64,
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
}
