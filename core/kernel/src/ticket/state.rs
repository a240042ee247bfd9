//! The ticket lifecycle as a pure state machine.
//!
//! ```text
//!  awaiting_approval ──approve──▶ queued ──route──▶ routed ──start──▶ running ──succeed──▶ succeeded
//!         │                        ▲  ▲               │                 │
//!         │                        │  └───requeue─────┴─────────────────┤ (bot lost, restart)
//!         │                        │                                    │ fail
//!         │                        └──────────retry──────────────── failed ──give_up──▶ dead
//!         └─────────────── cancel (from every non-terminal state) ──────────────────▶ cancelled
//! ```
//!
//! `failed` is where a ticket waits out its backoff; `retry` is legal only while
//! attempts remain (checked by [`super::Ticket::apply`], which knows the counts).
//! Terminal states are `succeeded`, `dead` and `cancelled`.

use serde::{Deserialize, Serialize};
use specta::Type;
use std::fmt;

use crate::name::Named;

/// Where a ticket is in its lifecycle.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Type,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
    utoipa::ToSchema,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TicketState {
    AwaitingApproval,
    Queued,
    Routed,
    Running,
    Succeeded,
    Failed,
    Dead,
    Cancelled,
}

impl TicketState {
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Dead | Self::Cancelled)
    }

    /// The state `event` leads to from here, or `None` if the pair is illegal.
    pub fn on(self, event: TransitionKind) -> Option<TicketState> {
        use TicketState as S;
        use TransitionKind as E;
        match (self, event) {
            (S::AwaitingApproval, E::Approve) => Some(S::Queued),
            (S::Queued, E::Route) => Some(S::Routed),
            (S::Routed, E::Start) => Some(S::Running),
            (S::Running, E::Succeed) => Some(S::Succeeded),
            (S::Routed | S::Running, E::Fail) => Some(S::Failed),
            (S::Routed | S::Running, E::Requeue) => Some(S::Queued),
            (S::Failed, E::Retry) => Some(S::Queued),
            (S::Failed, E::GiveUp) => Some(S::Dead),
            (s, E::Cancel) if !s.is_terminal() => Some(S::Cancelled),
            _ => None,
        }
    }
}

impl fmt::Display for TicketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can happen to a ticket. Past-tense names are reserved for the events
/// that record them (`TicketTransitioned`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Type,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
    utoipa::ToSchema,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    Approve,
    Route,
    Start,
    Succeed,
    Fail,
    Requeue,
    Retry,
    GiveUp,
    Cancel,
}

/// One legal move of the lifecycle: `event` takes a ticket from `from` to
/// `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
pub struct LifecycleEdge {
    pub from: TicketState,
    pub event: TransitionKind,
    pub to: TicketState,
}

/// Every legal move, read off [`TicketState::on`]: what the surfaces draw
/// the lifecycle from (the desktop's typed bindings carry it as a
/// constant), so a diagram cannot show a move the code does not make or
/// miss one it does.
pub fn lifecycle() -> Vec<LifecycleEdge> {
    TicketState::all()
        .iter()
        .flat_map(|&from| {
            TransitionKind::all().iter().filter_map(move |&event| {
                from.on(event).map(|to| LifecycleEdge { from, event, to })
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use TicketState as S;
    use TransitionKind as E;

    /// Every (state, event) pair, spelled out: a change to the lifecycle must
    /// change this table.
    #[test]
    fn every_state_event_pair() {
        let legal: &[(S, E, S)] = &[
            (S::AwaitingApproval, E::Approve, S::Queued),
            (S::AwaitingApproval, E::Cancel, S::Cancelled),
            (S::Queued, E::Route, S::Routed),
            (S::Queued, E::Cancel, S::Cancelled),
            (S::Routed, E::Start, S::Running),
            (S::Routed, E::Fail, S::Failed),
            (S::Routed, E::Requeue, S::Queued),
            (S::Routed, E::Cancel, S::Cancelled),
            (S::Running, E::Succeed, S::Succeeded),
            (S::Running, E::Fail, S::Failed),
            (S::Running, E::Requeue, S::Queued),
            (S::Running, E::Cancel, S::Cancelled),
            (S::Failed, E::Retry, S::Queued),
            (S::Failed, E::GiveUp, S::Dead),
            (S::Failed, E::Cancel, S::Cancelled),
        ];
        let mut checked = 0;
        for &state in S::all() {
            for &event in E::all() {
                let expected = legal
                    .iter()
                    .find(|(s, e, _)| *s == state && *e == event)
                    .map(|(_, _, to)| *to);
                assert_eq!(state.on(event), expected, "({state}, {event:?})");
                checked += 1;
            }
        }
        assert_eq!(checked, 72);
        let drawn: Vec<(S, E, S)> = lifecycle()
            .iter()
            .map(|e| (e.from, e.event, e.to))
            .collect();
        assert_eq!(drawn, legal, "the exported table is the machine's");
    }

    #[test]
    fn terminal_states_accept_nothing() {
        for state in S::all().iter().copied().filter(|s| s.is_terminal()) {
            for &event in E::all() {
                assert_eq!(state.on(event), None, "{state} must be final");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for &state in S::all() {
            assert_eq!(S::parse(state.as_str()), Some(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        assert_eq!(S::parse("bogus"), None);
    }
}
