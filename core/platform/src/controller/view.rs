//! What the controller shows its surfaces: the event stream, a bot with its
//! lane, health, and the counters `/metrics` reads. Plain data, serialised
//! as the API and the app send it; never decides anything.

use std::sync::atomic::AtomicU64;

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::clock::UnixMs;
use crate::cost::LedgerEntry;
use crate::lane::LaneStats;
use crate::store::WriteBatch;
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
    /// Bots, their lanes and their load, every one (about once a second):
    /// what the controller's own watchers read. A surface's feed sends it
    /// once, first, then `BotsChanged` (see `feed::BotFeed`).
    BotsUpdated { bots: Vec<BotView> },
    /// What changed among the bots since this feed's last word of them
    /// (its first is a whole `BotsUpdated`): each bot that is new or whose
    /// figures moved, in the order the fleet lists them, and the ids of
    /// those no longer listed (with the last part). About once a second,
    /// in parts of at most 500 bots, and none while nothing changes, so a
    /// quiet fleet of 10,000 bots sends its viewers nothing.
    BotsChanged {
        changed: Vec<BotView>,
        gone: Vec<BotId>,
    },
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
    /// Drained (cordoned): it finishes what it holds and is routed nothing
    /// more until uncordoned. (Absent from a controller older than drains.)
    #[serde(default)]
    pub cordoned: bool,
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

/// What draining a node did: its live bots cordoned together, then each
/// bot's lane taken back as in [`Drained`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDrained {
    /// Every live bot of it is drained: per bot, what went back to the
    /// queue and what it holds; `fresh` when this drain changed anything
    /// (a bot cordoned now, or a ticket taken back).
    Drained {
        bots: Vec<(BotId, Drained)>,
        fresh: bool,
    },
    /// Its live bots are all that is left of these skills: draining them
    /// would leave their tickets nowhere to go. Nothing changed.
    LastOfSkills(Vec<Skill>),
    /// None of its bots is live.
    NotLive,
    /// No bot ever came from it.
    Unknown,
}

impl NodeDrained {
    /// Why nothing was drained, in a sentence, and whether that is
    /// because no such node is known; `None` when the node is drained.
    pub fn refusal(&self, node: &str) -> Option<(bool, String)> {
        match self {
            NodeDrained::Drained { .. } => None,
            NodeDrained::NotLive => Some((
                false,
                format!("node {node} has no live bot: there is nothing to drain"),
            )),
            NodeDrained::LastOfSkills(skills) => Some((
                false,
                format!(
                    "node {node}'s bots are the last live bots with {}: draining them would leave their tickets nowhere to go",
                    skills
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            NodeDrained::Unknown => {
                Some((true, format!("no node {node} is known to this controller")))
            }
        }
    }

    /// Every ticket it took back from the node's lanes.
    pub fn requeued(&self) -> usize {
        match self {
            NodeDrained::Drained { bots, .. } => bots
                .iter()
                .map(|(_, d)| match d {
                    Drained::Drained { requeued, .. } => requeued.len(),
                    _ => 0,
                })
                .sum(),
            _ => 0,
        }
    }

    /// The attempts its bots hold, which finish on them.
    pub fn held(&self) -> u32 {
        match self {
            NodeDrained::Drained { bots, .. } => bots
                .iter()
                .map(|(_, d)| match d {
                    Drained::Drained { held, .. } | Drained::Already { held } => *held,
                    _ => 0,
                })
                .sum(),
            _ => 0,
        }
    }
}

/// What draining a bot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drained {
    /// Cordoned now: the tickets waiting in its lane went back to the
    /// queue (a new attempt each, for another bot); `held` attempts it had
    /// already taken finish on it.
    Drained { requeued: Vec<TicketId>, held: u32 },
    /// Cordoned already, and nothing was left in its lane to take back;
    /// `held` attempts it has taken finish on it.
    Already { held: u32 },
    /// It is the last live bot of these skills: draining it would leave
    /// their tickets nowhere to go. Nothing changed.
    LastOfSkills(Vec<Skill>),
    /// It is not live (lost or gone): there is nothing to drain.
    NotLive,
    /// No such bot.
    Unknown,
}

impl Drained {
    /// Why nothing was drained, in a sentence, and whether that is
    /// because no such bot is known; `None` when the bot is drained.
    pub fn refusal(&self, bot: &str) -> Option<(bool, String)> {
        match self {
            Drained::Drained { .. } | Drained::Already { .. } => None,
            Drained::NotLive => Some((
                false,
                format!("bot {bot} is not live: there is nothing to drain"),
            )),
            Drained::LastOfSkills(skills) => Some((
                false,
                format!(
                    "bot {bot} is the last live bot with {}: draining it would leave their tickets nowhere to go",
                    skills
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            Drained::Unknown => Some((true, format!("no bot {bot} is known to this controller"))),
        }
    }
}

/// Counters for `/metrics` and the architecture view's edges.
#[derive(Debug, Default)]
pub struct Stats {
    pub submitted: AtomicU64,
    pub refused: AtomicU64,
    /// Lane entries published (a ticket's attempt sent to its bot).
    pub routed: AtomicU64,
    /// Finished reports taken back from the bots.
    pub results: AtomicU64,
    pub commits: AtomicU64,
    pub committed_rows: AtomicU64,
    pub transitions: AtomicU64,
    pub ledger_rows: AtomicU64,
    pub cost_nusd: AtomicU64,
    pub input_tokens: AtomicU64,
    pub output_tokens: AtomicU64,
    /// The last two minutes as committed, second by second.
    pub series: std::sync::Mutex<super::series::Series>,
}

/// How a surface reaches the controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlowSurface {
    /// The HTTP API, behind its auth gate (the browser, the CLI, an
    /// attached desktop).
    Http,
    /// The desktop window's IPC to its embedded controller: no listener,
    /// no gate.
    Ipc,
}

/// Requests at the auth gate since it started: every refusal, and every
/// request let through but the reads of these counts and of the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct GateCounts {
    #[specta(type = specta_typescript::Number)]
    pub admitted: u64,
    #[specta(type = specta_typescript::Number)]
    pub refused: u64,
}

/// Tool calls through the connector runtime since it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ToolCounts {
    /// Calls the gate let through.
    #[specta(type = specta_typescript::Number)]
    pub allowed: u64,
    /// Calls it refused (denied, needing approval, bad parameters).
    #[specta(type = specta_typescript::Number)]
    pub refused: u64,
    /// Requests sent to outside systems over HTTP (each try).
    #[specta(type = specta_typescript::Number)]
    pub sent: u64,
    /// Requests a built-in connector served in process.
    #[specta(type = specta_typescript::Number)]
    pub served: u64,
}

/// What has flowed along each edge of the architecture since the
/// controller started: cumulative counts, which a surface turns into
/// rates by reading twice (one read alone is no rate).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct FlowCounts {
    #[specta(type = specta_typescript::Number)]
    pub at_ms: UnixMs,
    pub surface: FlowSurface,
    /// The auth gate's decisions (`None` over IPC: there is no gate).
    pub gate: Option<GateCounts>,
    /// Tickets admitted by the controller, and submissions it refused.
    #[specta(type = specta_typescript::Number)]
    pub submitted: u64,
    #[specta(type = specta_typescript::Number)]
    pub refused: u64,
    /// Attempts sent to the bots' lanes.
    #[specta(type = specta_typescript::Number)]
    pub routed: u64,
    /// Results taken back from the bots.
    #[specta(type = specta_typescript::Number)]
    pub results: u64,
    /// Group commits to the store, and the rows they wrote.
    #[specta(type = specta_typescript::Number)]
    pub commits: u64,
    #[specta(type = specta_typescript::Number)]
    pub committed_rows: u64,
    /// Tool calls through the broker (`None`: no connectors here).
    pub tools: Option<ToolCounts>,
}

impl Stats {
    /// The counters of a controller started at `at_ms` (the series counts
    /// from there).
    pub(super) fn started_at(at_ms: UnixMs) -> Self {
        let stats = Self::default();
        stats
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .started(at_ms);
        stats
    }

    /// Counts a durable commit: its rows, the transitions it wrote, and, in
    /// the series, its finishes and cost in the second it became durable
    /// (`now_ms`, the controller's clock: a node's never enters it).
    pub(super) fn count_commit(&self, batch: &WriteBatch, written: &[&Transition], now_ms: UnixMs) {
        use std::sync::atomic::Ordering::Relaxed;
        self.commits.fetch_add(1, Relaxed);
        self.committed_rows.fetch_add(batch.len() as u64, Relaxed);
        self.transitions.fetch_add(written.len() as u64, Relaxed);
        let finished = written.iter().filter(|t| t.to.is_terminal()).count() as u32;
        let cost = batch.ledger.iter().map(|l| l.cost_nusd).sum();
        if finished > 0 || cost != 0 {
            self.series
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .add(now_ms, finished, cost);
        }
    }
}

impl super::Controller {
    /// The last two minutes, second by second, as this controller
    /// committed them (finished tickets, spend).
    pub fn recent_seconds(&self) -> Vec<super::series::Second> {
        self.stats()
            .series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .last(self.clock().now_ms())
    }

    /// The flow counts now, as seen through `surface` (whose gate, if any,
    /// is the caller's to count).
    pub fn flow_counts(&self, surface: FlowSurface, gate: Option<GateCounts>) -> FlowCounts {
        use std::sync::atomic::Ordering::Relaxed;
        let s = self.stats();
        FlowCounts {
            at_ms: self.clock().now_ms(),
            surface,
            gate,
            submitted: s.submitted.load(Relaxed),
            refused: s.refused.load(Relaxed),
            routed: s.routed.load(Relaxed),
            results: s.results.load(Relaxed),
            commits: s.commits.load(Relaxed),
            committed_rows: s.committed_rows.load(Relaxed),
            tools: self.connectors().map(|c| {
                let n = c.runtime().counts();
                ToolCounts {
                    allowed: n.allowed.load(Relaxed),
                    refused: n.refused.load(Relaxed),
                    sent: n.sent.load(Relaxed),
                    served: n.served.load(Relaxed),
                }
            }),
        }
    }
}
