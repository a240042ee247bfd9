//! Bots: workers that each consume only their own lane and run a model.
//!
//! A bot reads deliveries from its lane, runs the model for each (abandoning
//! the call at once if the ticket is cancelled; a `tool` ticket first calls
//! one connector operation through the gate, runtime and broker, and never
//! sees a credential; a `signal` ticket first runs a trading strategy,
//! [`signal`]; a `media` ticket runs `ffmpeg` on artifacts and calls no
//! model, [`media`]), and reports `Started`, `Progress` (media work) and
//! `Finished` to the controller with the model's usage. A bot never prices its
//! work, never writes to the store and never acknowledges its own lane: the
//! controller acks an entry only after the result is durable, so a bot that
//! dies mid-ticket loses nothing. Start with [`run_bot`]; [`spawn_supervised`]
//! restarts a bot that panicked, and the new incarnation claims what the old
//! one held.

pub mod artifacts;
pub mod build;
mod investigate;
pub mod media;
pub mod node;
pub mod signal;

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, UnixMs};

/// The most bots one process hosts (a local pool or a node).
pub const MAX_BOTS: usize = 1024;
use crate::cost::Usage;
use crate::lane::{Delivery, EntryId, Lane};
use crate::model::{ChatRequest, Model};
use crate::ticket::{BotId, Skill, TicketId, Work};

/// Deliveries past this count are not run again: the entry is dead-lettered.
pub const MAX_DELIVERIES: u32 = 5;
/// How many entries a bot takes from its lane at once.
const READ_BATCH: usize = 16;
/// How long a read waits before checking for shutdown again.
const READ_BLOCK: Duration = Duration::from_millis(500);

/// What a bot is: its id, its skills and the model it runs.
#[derive(Debug, Clone)]
pub struct BotSpec {
    pub id: BotId,
    pub skills: Vec<Skill>,
    pub model: Arc<dyn Model>,
    /// Where `tool` tickets' calls run: this process's connector runtime,
    /// or (on a fleet node) the controller's. `None`: such tickets fail.
    pub tools: Option<crate::connector::Tools>,
    /// Where `media` and `build` tickets' files are. `None`: such
    /// tickets fail.
    pub artifacts: Option<Arc<artifacts::ArtifactStore>>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded {
        text: String,
        usage: Usage,
        reported_model: Option<String>,
        /// The model's reply (a chat's answer, a tool's summary, a signal's
        /// explanation) stopped at its token limit (absent on the wire
        /// from a node that predates it: not cut).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        cut: bool,
    },
    Failed {
        error: String,
        retryable: bool,
    },
    /// The ticket was cancelled before or during the call; no usage is known.
    Cancelled,
}

/// What a bot tells the controller (in fleet mode, as JSON on the results
/// stream).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "report", rename_all = "snake_case")]
pub enum BotReport {
    Started {
        bot: BotId,
        ticket: TicketId,
        attempt: u32,
        at_ms: UnixMs,
    },
    /// How far a running attempt is (media work): a heartbeat, with a
    /// figure 0..=100 when the work knows one. Advice only: never stored
    /// on the ticket, dropped when the way to the controller is full.
    Progress {
        bot: BotId,
        ticket: TicketId,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<u8>,
        at_ms: UnixMs,
    },
    Finished {
        bot: BotId,
        entry: EntryId,
        ticket: TicketId,
        attempt: u32,
        outcome: Outcome,
        started_at_ms: UnixMs,
        at_ms: UnixMs,
        /// Where this report sits on the results stream (fleet mode), to be
        /// acknowledged once the result is durable. Set by the reader.
        #[serde(skip)]
        receipt: Option<EntryId>,
    },
}

pub use crate::cancel::{CancelHook, CancelRegistry};

/// Everything a running bot holds.
#[derive(Debug, Clone)]
pub struct BotContext {
    pub spec: BotSpec,
    pub lane: Arc<dyn Lane>,
    pub reports: mpsc::Sender<BotReport>,
    pub cancels: Arc<CancelRegistry>,
    pub clock: SharedClock,
    pub shutdown: CancellationToken,
}

/// Runs one incarnation of a bot until shutdown. `consumer` names this
/// incarnation in its lane's consumer group.
pub async fn run_bot(cx: BotContext, consumer: String) {
    // Entries a previous incarnation held are ours to finish.
    if let Ok(held) = cx.lane.claim(&consumer, Duration::ZERO, usize::MAX).await {
        for d in held {
            if !handle(&cx, d).await {
                return;
            }
        }
    }
    loop {
        let batch = tokio::select! {
            biased;
            _ = cx.shutdown.cancelled() => return,
            r = cx.lane.read(&consumer, READ_BATCH, READ_BLOCK) => r,
        };
        match batch {
            Ok(batch) => {
                for d in batch {
                    if !handle(&cx, d).await {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(bot = %cx.spec.id, error = %e, "lane read failed");
                tokio::time::sleep(READ_BLOCK).await;
            }
        }
    }
}

/// Runs one delivery; returns `false` if the bot must stop (the controller
/// has gone away or is shutting down).
async fn handle(cx: &BotContext, d: Delivery) -> bool {
    let bot = cx.spec.id.clone();
    let (ticket, attempt) = (d.entry.ticket, d.entry.attempt);
    if cx.lane.superseded() {
        // Read before Redis lost its data: the controller has re-driven this
        // attempt as a new one, so running it would pay for nothing.
        tracing::info!(bot = %bot, ticket = %ticket, attempt, "skipped: superseded by a re-drive");
        return true;
    }
    let started_at_ms = cx.clock.now_ms();
    let token = cx.cancels.begin(ticket);
    let outcome = if token.is_cancelled() {
        Outcome::Cancelled
    } else if d.deliveries > MAX_DELIVERIES {
        let error = format!(
            "delivered {} times without finishing (limit {MAX_DELIVERIES}); dead-lettered",
            d.deliveries
        );
        if let Err(e) = cx.lane.dead_letter(&d, &error).await {
            tracing::warn!(bot = %bot, error = %e, "could not record the dead letter");
        }
        Outcome::Failed {
            error,
            retryable: false,
        }
    } else {
        let started = BotReport::Started {
            bot: bot.clone(),
            ticket,
            attempt,
            at_ms: started_at_ms,
        };
        if cx.reports.send(started).await.is_err() {
            return false;
        }
        let run = async {
            match &*d.entry.work {
                Work::Chat(payload) => chat_outcome(
                    cx.spec
                        .model
                        .chat(&ChatRequest::from_payload(payload))
                        .await,
                ),
                Work::Tool(payload) => {
                    let tenant = &d.entry.tenant;
                    run_tool(cx, payload, (tenant, ticket, attempt), &token).await
                }
                Work::Signal(payload) => signal::run(cx, payload).await,
                Work::Media(payload) => {
                    let tenant = &d.entry.tenant;
                    media::run(cx, payload, (tenant, ticket, attempt), &token).await
                }
                Work::Build(payload) => {
                    let tenant = &d.entry.tenant;
                    build::run(cx, payload, (tenant, ticket, attempt), &token).await
                }
                Work::Investigate(payload) => {
                    let tenant = &d.entry.tenant;
                    investigate::run(cx, payload, (tenant, ticket, attempt), &token).await
                }
            }
        };
        tokio::select! {
            biased;
            // Shutting down: abandon the call and report nothing; the ticket
            // is still `running` in the store and is requeued on restart.
            _ = cx.shutdown.cancelled() => {
                cx.cancels.end(ticket);
                return false;
            }
            _ = token.cancelled() => Outcome::Cancelled,
            outcome = run => outcome,
        }
    };
    cx.cancels.end(ticket);
    let finished = BotReport::Finished {
        bot,
        entry: d.id,
        ticket,
        attempt,
        outcome,
        started_at_ms,
        at_ms: cx.clock.now_ms(),
        receipt: None,
    };
    cx.reports.send(finished).await.is_ok()
}

fn chat_outcome(r: Result<crate::model::ChatReply, crate::model::ModelError>) -> Outcome {
    match r {
        Ok(reply) => Outcome::Succeeded {
            text: reply.text,
            usage: reply.usage,
            reported_model: reply.reported_model,
            cut: reply.cut,
        },
        Err(e) => Outcome::Failed {
            retryable: e.retryable(),
            error: e.to_string(),
        },
    }
}

/// What the model is asked when a tool ticket names no prompt.
const DEFAULT_TOOL_PROMPT: &str = "Say in one sentence what this result means.";
/// The most of a tool's result the model is shown.
const MAX_TOOL_RESULT_IN_PROMPT: usize = 4096;

/// A `tool` ticket: the call (gate, runtime, broker), then the model on its
/// result. The bot sees the result, never a credential. The result stored
/// on the ticket is `{"tool": …, "summary": …}`.
async fn run_tool(
    cx: &BotContext,
    payload: &crate::ticket::ToolPayload,
    (tenant, ticket, attempt): (&crate::ticket::TenantId, TicketId, u32),
    cancel: &CancellationToken,
) -> Outcome {
    let Some(tools) = &cx.spec.tools else {
        return Outcome::Failed {
            error: format!(
                "bot {} has no connector runtime; tool tickets run where one is configured",
                cx.spec.id
            ),
            retryable: false,
        };
    };
    let request = crate::connector::runtime::ToolRequest {
        call: crate::connector::call::CallRef {
            bot: cx.spec.id.clone(),
            tenant: Some(tenant.clone()),
            ticket,
            attempt,
            connector: payload.connector.clone(),
            operation: payload.operation.clone(),
        },
        params: payload.params.clone(),
        call_index: 0,
        dry_run: payload.dry_run,
    };
    let result = match tools.call(&request, cancel).await {
        Ok(result) => result,
        Err(crate::connector::runtime::ToolError::Cancelled) => return Outcome::Cancelled,
        // A dry run's write: nothing was sent; the answer says what would
        // have been, and no model is asked about it.
        Err(crate::connector::runtime::ToolError::DryRun(refused)) => {
            return Outcome::Succeeded {
                text: serde_json::json!({ "dry_run": {
                    "connector": payload.connector,
                    "operation": payload.operation,
                    "params": payload.params,
                    "refused": refused,
                } })
                .to_string(),
                usage: crate::cost::Usage::default(),
                reported_model: None,
                cut: false,
            };
        }
        Err(e) => {
            return Outcome::Failed {
                retryable: e.retryable(),
                error: format!("{}.{}: {e}", payload.connector, payload.operation),
            };
        }
    };
    let body = result.body.to_string();
    let shown = crate::text::clip(&body, MAX_TOOL_RESULT_IN_PROMPT);
    let more = if shown.len() < body.len() { " …" } else { "" };
    let prompt = format!(
        "{}\n\n{}.{} answered HTTP {}:\n{shown}{more}",
        payload.prompt.as_deref().unwrap_or(DEFAULT_TOOL_PROMPT),
        result.connector,
        result.operation,
        result.status,
    );
    let chat = ChatRequest::from_payload(&crate::ticket::ChatPayload {
        prompt,
        system: None,
        max_tokens: Some(96),
        response_schema: None,
    });
    match cx.spec.model.chat(&chat).await {
        Ok(reply) => Outcome::Succeeded {
            text: serde_json::json!({ "tool": result, "summary": reply.text }).to_string(),
            usage: reply.usage,
            reported_model: reply.reported_model,
            // The summary stopped at its token limit.
            cut: reply.cut,
        },
        // A retry finds a write already done in the effect ledger and does
        // not send it again.
        Err(e) => Outcome::Failed {
            retryable: e.retryable(),
            error: e.to_string(),
        },
    }
}

/// Runs a bot, restarting it if it panics; each incarnation has its own
/// consumer name and claims what the last one held.
pub fn spawn_supervised(cx: BotContext) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for incarnation in 1u64.. {
            let consumer = format!("{}#{incarnation}", cx.spec.id);
            match tokio::spawn(run_bot(cx.clone(), consumer)).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(bot = %cx.spec.id, error = %e, "bot crashed; restarting");
                    if cx.shutdown.is_cancelled() {
                        return;
                    }
                }
            }
        }
    })
}
