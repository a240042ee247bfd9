//! Results: what bots report about their attempts, recorded and priced.
//!
//! It owns `routed → running`, an attempt's end (succeeded; failed, backing
//! off or given up; abandoned and requeued), and its charge: one ledger row
//! per attempt, priced once, centrally. A result is recorded at most once
//! and only for the ticket's current attempt; a late one is still priced
//! (it cost what it cost) but never moves the ticket. Nothing a model or an
//! upstream said is kept before it is cleaned and redacted. Start at
//! `on_report`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::queues::backoff_delay;
use super::state::Scheduler;
use crate::bot::{BotReport, Outcome};
use crate::clock::UnixMs;
use crate::cost::{LedgerEntry, Usage};
use crate::lane::EntryId;
use crate::text;
use crate::ticket::{BotId, TenantId, Ticket, TicketId, TicketState, TransitionKind};

impl Scheduler {
    pub(super) fn on_report(&mut self, report: BotReport) {
        match report {
            BotReport::Started {
                ticket,
                attempt,
                at_ms,
                ..
            } => {
                let Some(mut t) = self.live.remove(&ticket) else {
                    return;
                };
                if t.attempts == attempt {
                    self.mark_started(&mut t, at_ms);
                }
                self.live.insert(ticket, t);
            }
            BotReport::Progress {
                ticket,
                attempt,
                progress,
                at_ms,
                ..
            } => {
                let Some(mut t) = self.live.remove(&ticket) else {
                    return;
                };
                if t.attempts == attempt {
                    // A progress report read before its start report
                    // shows the start all the same.
                    self.mark_started(&mut t, at_ms);
                    if t.state == TicketState::Running && self.events.receiver_count() > 0 {
                        let _ = self
                            .events
                            .send(crate::controller::CoreEvent::TicketProgress {
                                ticket,
                                tenant: t.tenant.clone(),
                                attempt,
                                progress: progress.map(|p| p.min(100)),
                                at_ms,
                            });
                    }
                }
                self.live.insert(ticket, t);
            }
            BotReport::Finished {
                bot,
                entry,
                ticket,
                attempt,
                outcome,
                started_at_ms,
                at_ms,
                receipt,
            } => {
                let at = (started_at_ms, at_ms);
                self.on_finished(bot, entry, ticket, attempt, outcome, at, receipt);
            }
        }
    }

    /// `routed → running`, once, whichever report shows it first.
    fn mark_started(&mut self, t: &mut Ticket, at_ms: UnixMs) {
        if t.state == TicketState::Routed {
            self.transition(
                t,
                TransitionKind::Start,
                None,
                "bot started the model call",
                at_ms,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_finished(
        &mut self,
        bot: BotId,
        entry: EntryId,
        ticket: TicketId,
        attempt: u32,
        outcome: Outcome,
        (started_at_ms, at_ms): (UnixMs, UnixMs),
        receipt: Option<EntryId>,
    ) {
        // The results-stream entry is acknowledged once this turn's batch is
        // durable, whatever it says: an entry that moves nothing is done too.
        self.receipts.extend(receipt);
        self.stats.results.fetch_add(1, Ordering::Relaxed);
        let Some(bot_idx) = self.roster.index_of(&bot) else {
            tracing::warn!(%bot, "result from an unknown bot ignored");
            return;
        };
        self.acks
            .push((self.roster.handle(bot_idx).lane.clone(), entry));
        let held = self.roster.release(ticket, attempt);
        let first = held.is_some();
        // A reply costs what it cost, even for a ticket cancelled meanwhile.
        let tenant = self
            .live
            .get(&ticket)
            .map(|t| t.tenant.clone())
            .or(held.map(|(_, tenant)| tenant));
        if let (Outcome::Succeeded { usage, .. }, Some(tenant)) = (&outcome, tenant) {
            self.charge(ticket, attempt, tenant, bot_idx, *usage, at_ms, first);
        }
        let Some(mut t) = self.live.remove(&ticket) else {
            return;
        };
        let current =
            t.attempts == attempt && matches!(t.state, TicketState::Routed | TicketState::Running);
        if !current {
            self.live.insert(ticket, t);
            return;
        }
        // A result can arrive in the same turn as its start report, or
        // without it (a node drops the start when both travel together).
        self.mark_started(&mut t, started_at_ms);
        let counters = self.roster.handle(bot_idx).counters.clone();
        if matches!(outcome, Outcome::Succeeded { .. } | Outcome::Failed { .. })
            && matches!(*t.work, crate::ticket::Work::Chat(_))
        {
            counters
                .pace
                .record(self.clock.now_ms(), at_ms - started_at_ms);
        }
        match outcome {
            Outcome::Succeeded {
                text,
                usage,
                reported_model,
                cut,
            } => {
                // A secret a model repeats (from a tool's answer, say) is not
                // kept, shown or streamed; a NUL no store can hold is
                // replaced, and the history says so.
                let (text, nuls) = text::clean(&text);
                let text = self.config.secret_rules.redact(&text);
                let (reported_model, nuls_in_model) = match reported_model {
                    Some(m) => {
                        let (m, n) = text::clean(&m);
                        (Some(m.into_owned()), n)
                    }
                    None => (None, 0),
                };
                let mut result = serde_json::json!({
                    "text": text,
                    "model": self.roster.handle(bot_idx).model,
                    "reported_model": reported_model,
                    "usage": usage,
                });
                if cut {
                    result["cut"] = serde_json::Value::Bool(true);
                }
                t.result = Some(Arc::new(result));
                let reason = format!("model replied{}", text::note(nuls + nuls_in_model));
                self.transition(&mut t, TransitionKind::Succeed, None, &reason, at_ms);
                counters.succeeded.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Failed { error, retryable } => {
                // An upstream error may quote a credential, or hold a NUL.
                let (error, nuls) = text::clean(&error);
                let error =
                    self.config.secret_rules.redact(&error).into_owned() + &text::note(nuls);
                counters.failed.fetch_add(1, Ordering::Relaxed);
                t.error = Some(error.clone());
                if retryable && t.can_retry() {
                    let delay = backoff_delay(
                        self.config.backoff_base,
                        self.config.backoff_max,
                        t.attempts,
                    );
                    t.not_before_ms = Some(at_ms + delay.as_millis() as i64);
                    let reason = format!("{error}; retrying in {} ms", delay.as_millis());
                    self.transition(&mut t, TransitionKind::Fail, None, &reason, at_ms);
                    self.queues.back_off(t.id, t.not_before_ms.unwrap_or(at_ms));
                } else {
                    self.transition(&mut t, TransitionKind::Fail, None, &error, at_ms);
                    let why = if retryable {
                        "no attempts left"
                    } else {
                        "error is not retryable"
                    };
                    self.transition(&mut t, TransitionKind::GiveUp, None, why, at_ms);
                }
            }
            Outcome::Cancelled => {
                // The scheduler cancels tickets itself; a bot reporting a
                // cancel for a ticket still current means the token outlived
                // its ticket. Treat it as a lost attempt and run it again.
                self.transition(
                    &mut t,
                    TransitionKind::Requeue,
                    None,
                    "bot abandoned the attempt",
                    at_ms,
                );
                self.queues.enqueue(&t);
            }
        }
        if !t.state.is_terminal() {
            self.live.insert(ticket, t);
        }
    }

    /// Prices one finished attempt, centrally, and records its ledger row.
    /// In-memory spend moves only for the first result of an attempt; the
    /// ledger's primary key keeps the store from counting a duplicate.
    #[allow(clippy::too_many_arguments)]
    fn charge(
        &mut self,
        ticket: TicketId,
        attempt: u32,
        tenant: TenantId,
        bot_idx: usize,
        usage: Usage,
        at_ms: UnixMs,
        first: bool,
    ) {
        let model = self.roster.handle(bot_idx).model.clone();
        let priced = match self.config.prices.price(&model, usage) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%ticket, error = %e, "attempt not charged");
                return;
            }
        };
        if first {
            self.budgets.charge(&tenant, priced.cost_nusd);
            self.stats.ledger_rows.fetch_add(1, Ordering::Relaxed);
            self.stats
                .cost_nusd
                .fetch_add(priced.cost_nusd as u64, Ordering::Relaxed);
            self.stats
                .input_tokens
                .fetch_add(u64::from(usage.input_tokens), Ordering::Relaxed);
            self.stats
                .output_tokens
                .fetch_add(u64::from(usage.output_tokens), Ordering::Relaxed);
        }
        self.batch.ledger.push(LedgerEntry {
            ticket,
            attempt,
            tenant,
            bot: self.roster.handle(bot_idx).id.clone(),
            model,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_nusd: priced.cost_nusd,
            unpriced: priced.unpriced,
            price_version: self.config.prices.version().to_owned(),
            at_ms,
        });
    }
}
