//! The operator's controls over a running session: the kill switch, the
//! trading state of the desk or of one bot (ACTIVE, REDUCING, HALTED;
//! setting ACTIVE is also how a desk resumes after a kill), and a close
//! that ends the session where it is. Each is
//! journalled before it is applied, with who, why and the point of the
//! quote stream it fell at, so a restart applies it at the same point and
//! rebuilds the same desk.

use std::collections::VecDeque;

use oshal_trading::desk::KillLevel as DeskKill;
use oshal_trading::risk::TradingState;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::{Runner, Stop};
use crate::store::JournalEntry;
use crate::trading::TradingError;
use crate::trading::view::{KillLevel, StateChangeView, TradingStateName};

/// Where in the runner's step a control falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::trading) enum Phase {
    /// Waiting for the signal of the bar the last quote closed.
    Pending,
    /// Before the next quote (or while it is not yet due).
    Between,
    /// The next quote's orders at a venue elsewhere, this many of their
    /// reports applied.
    AtVenue(u32),
}

impl Phase {
    /// Its rank among the points after the same number of quotes: the
    /// pending signal is acted on before the next quote's orders leave.
    pub(super) fn rank(self) -> u64 {
        match self {
            Phase::Pending => 0,
            Phase::Between => 1,
            Phase::AtVenue(k) => 2 + u64::from(k),
        }
    }
}

/// What an operator does to a running session.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::trading) enum Action {
    Kill(KillLevel),
    /// Ends the session where it is.
    Close,
    /// Sets the desk's trading state, or `bot`'s.
    State {
        state: TradingStateName,
        bot: Option<String>,
    },
}

/// A control on its way to the runner; the reply is its id (`K-<n>` for
/// a kill, `T-<n>` for a state set).
pub(in crate::trading) struct Command {
    pub action: Action,
    pub by: String,
    pub reason: String,
    pub reply: oneshot::Sender<Result<String, TradingError>>,
}

/// A control as the journal keeps it (kind `kill` with `level`, kind
/// `state` with `state` and maybe `bot`): who, why, and where it was
/// applied (after `events` quotes; `pending` while the desk waited for the
/// signal of the bar that quote closed; `at_venue` while it waited for the
/// report of the order that many reports into the next quote's orders at
/// a venue elsewhere).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(in crate::trading) struct ControlEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<KillLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TradingStateName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub close: bool,
    pub by: String,
    pub reason: String,
    pub at_ms: i64,
    pub events: u64,
    pub pending: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_venue: Option<u32>,
}

impl ControlEntry {
    fn phase(&self) -> Phase {
        match (self.pending, self.at_venue) {
            (true, _) => Phase::Pending,
            (false, None) => Phase::Between,
            (false, Some(k)) => Phase::AtVenue(k),
        }
    }

    /// Where it falls: quote by quote, and within a quote by phase.
    fn point(&self) -> (u64, u64) {
        (self.events, self.phase().rank())
    }

    fn kind(&self) -> &'static str {
        if self.close {
            "close"
        } else if self.level.is_some() {
            "kill"
        } else {
            "state"
        }
    }

    fn action(&self) -> Result<Action, String> {
        match (self.level, self.state, self.close) {
            (Some(level), None, false) => Ok(Action::Kill(level)),
            (None, Some(state), false) => Ok(Action::State {
                state,
                bot: self.bot.clone(),
            }),
            (None, None, true) => Ok(Action::Close),
            _ => Err("a control is a kill (level), a state set (state) or a close".into()),
        }
    }
}

pub(in crate::trading) fn desk_level(level: KillLevel) -> DeskKill {
    match level {
        KillLevel::HaltEntries => DeskKill::HaltEntries,
        KillLevel::CancelOrders => DeskKill::CancelOrders,
        KillLevel::Flatten => DeskKill::Flatten,
    }
}

fn desk_state(state: TradingStateName) -> TradingState {
    match state {
        TradingStateName::Active => TradingState::Active,
        TradingStateName::Reducing => TradingState::Reducing,
        TradingStateName::Halted => TradingState::Halted,
    }
}

/// The controls of a journal (its `kill` and `state` entries), in the
/// order they fall.
pub(in crate::trading) fn controls_in_order(
    entries: &[JournalEntry],
) -> Result<VecDeque<ControlEntry>, String> {
    let mut controls: Vec<(ControlEntry, u32)> = Vec::new();
    for e in entries
        .iter()
        .filter(|e| matches!(e.kind.as_str(), "kill" | "state" | "close"))
    {
        let c: ControlEntry = serde_json::from_str(&e.body)
            .map_err(|err| format!("journal entry {} of {}: {err}", e.seq, e.session))?;
        if c.kind() != e.kind || c.action().is_err() {
            return Err(format!(
                "journal entry {} of {}: a {} entry that is not one",
                e.seq, e.session, e.kind
            ));
        }
        controls.push((c, e.seq));
    }
    controls.sort_by_key(|(c, seq)| (c.point(), *seq));
    Ok(controls.into_iter().map(|(c, _)| c).collect())
}

impl Runner {
    /// Applies the journal's controls that fall at `point`.
    pub(super) fn apply_replayed(&mut self, point: (u64, u64)) -> Result<(), Stop> {
        while self.replay.front().is_some_and(|c| c.point() <= point) {
            let c = self.replay.pop_front().expect("checked above");
            self.enact(&c)
                .map_err(|e| format!("a journalled {}: {e}", c.kind()))?;
            if c.close {
                return Err(Stop::Closed);
            }
        }
        Ok(())
    }

    /// What a control does to the session; its id.
    fn enact(&self, c: &ControlEntry) -> Result<String, String> {
        let mut live = self.session.live();
        match c.action()? {
            Action::Close => {
                live.closed = Some(format!("by {}: {}", c.by, c.reason));
                Ok("closed".into())
            }
            Action::Kill(level) => live
                .desk
                .kill(desk_level(level), &c.by, &c.reason, c.at_ms)
                .map(|k| k.id.clone())
                .map_err(|e| e.to_string()),
            Action::State { state, bot } => {
                match &bot {
                    None => live.desk.set_state(desk_state(state)),
                    Some(b) => live.desk.set_bot_state(b, desk_state(state)),
                }
                let id = format!("T-{}", live.state_changes.len() + 1);
                live.state_changes.push(StateChangeView {
                    id: id.clone(),
                    bot,
                    state,
                    by: c.by.clone(),
                    reason: c.reason.clone(),
                    at_ms: c.at_ms,
                });
                Ok(id)
            }
        }
    }

    /// Whether the runner takes an operator's control now: only once it is
    /// past every point the journal holds and past where it was before a
    /// restart, so a control falls where the session really is, not at
    /// the point the rebuild has reached (it waits in the channel till
    /// then).
    pub(super) fn takes_controls(&self) -> bool {
        self.caught_up && self.replay.is_empty()
    }

    /// Applies the controls waiting now; a close ends the runner.
    pub(super) async fn take_commands(&mut self, phase: Phase) -> Result<(), Stop> {
        if !self.takes_controls() {
            return Ok(());
        }
        while let Ok(cmd) = self.commands.try_recv() {
            self.apply(cmd, phase).await?;
        }
        Ok(())
    }

    /// One control: journalled first (so a restart applies it at the same
    /// point), then applied; the caller hears its id. A close, once
    /// applied, ends the runner (`Stop::Closed`).
    pub(super) async fn apply(&mut self, cmd: Command, phase: Phase) -> Result<(), Stop> {
        let s = &self.session;
        let (entry, seq) = {
            let live = s.live();
            let (level, state, bot) = match &cmd.action {
                Action::Kill(level) => (Some(*level), None, None),
                Action::State { state, bot } => (None, Some(*state), bot.clone()),
                Action::Close => (None, None, None),
            };
            let entry = ControlEntry {
                level,
                state,
                bot,
                close: cmd.action == Action::Close,
                by: cmd.by.clone(),
                reason: cmd.reason.clone(),
                at_ms: live.sim_ms,
                events: live.desk.events(),
                pending: phase == Phase::Pending,
                at_venue: match phase {
                    Phase::AtVenue(k) => Some(k),
                    _ => None,
                },
            };
            (entry, live.next_seq)
        };
        let journal = JournalEntry {
            book: super::super::BOOK.into(),
            session: s.id.clone(),
            seq,
            tenant: s.tenant.clone(),
            kind: entry.kind().into(),
            body: serde_json::to_string(&entry).expect("a control serializes"),
            at_ms: self.controller.clock().now_ms(),
        };
        let written = self.controller.store().append_journal(&[journal]).await;
        let reply = match written {
            Ok(1) => {
                s.live().next_seq += 1;
                self.enact(&entry).map_err(|e| {
                    TradingError::Conflict(format!("the desk could not apply it: {e}"))
                })
            }
            Ok(_) => Err(TradingError::Conflict(format!(
                "journal entry {seq} of session {} was written by another controller",
                s.id
            ))),
            Err(e) => Err(TradingError::Store(e)),
        };
        let closed = entry.close && reply.is_ok();
        let _ = cmd.reply.send(reply);
        if closed {
            return Err(Stop::Closed);
        }
        Ok(())
    }
}
