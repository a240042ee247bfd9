//! The scheduler: the one task that owns the controller's mutable state.
//!
//! It holds every live (non-terminal) ticket, the queue per skill, the
//! backoff timers, which bot holds which attempt, and each tenant's spend.
//! Each loop turn handles one message, drains whatever else is ready, routes,
//! and hands everything it decided to the writer as one batch, so the cost of
//! a durable write is shared by every ticket that moved in that turn. It
//! never awaits the store inside a turn: what must wait for durability
//! waits on the writer's callbacks.
//!
//! Invariants kept here:
//! - a ticket reaches a lane only after it is durable (as `queued`, or as
//!   `routed` when it was routed in the commit that admitted it);
//! - a submission refused on a store failure never runs, even if its commit
//!   landed after all, unless it has an idempotency key (the submitter's
//!   retry with the key is answered with it);
//! - an attempt's result is recorded and priced at most once in memory, and
//!   the ledger's primary key makes the store agree;
//! - a lane entry is acknowledged only after its result is durable;
//! - a ticket of a paused tenant, or of one whose budget is spent, is never
//!   routed (it is parked), and a drained bot is routed nothing.
//!
//! The parts. `state.rs` holds [`Scheduler`] and rebuilds it from the store;
//! `main_loop.rs` is the loop over [`Command`]s and ticks and the end of a
//! turn. Three plain structs hold the state that decisions are made on,
//! with no channel, writer or clock, each tested on its own: `queues.rs`
//! (the queue per skill and the backoff timers), `roster.rs` (the bots,
//! their load, and which bot holds which attempt) and `budgets.rs` (the
//! tenants' books and the work parked on them). The rest are `impl
//! Scheduler` blocks by concern: `admission.rs`, `routing.rs` (the one
//! routing step, used at admission and in the routing pass), `results.rs`,
//! `membership.rs` (bots joining and leaving, requeues, re-drive),
//! `requests.rs` (cancel, approve, budgets, why a ticket waits) and
//! `reconcile.rs` (refused writes checked against the store, records the
//! store refused). Start with `main_loop.rs`.

mod admission;
mod budgets;
mod main_loop;
mod membership;
mod queues;
mod reconcile;
mod requests;
mod results;
mod roster;
mod routing;
mod state;
mod unpublished;

pub use admission::Submitted;
pub use budgets::Spend;
pub(crate) use main_loop::Command;
pub(crate) use requests::Answer;
pub(crate) use state::Scheduler;
