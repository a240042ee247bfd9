//! Oshal's kernel: the types every other crate speaks, and nothing else.
//!
//! `ticket` (the unit of work, its ids, its lifecycle state machine and the
//! checks a submission passes at the edge), `clock` (all time comes through
//! it), `cost` (integer nano-dollar money and the versioned price table),
//! `text` (shared text helpers, and text a store can hold), `cancel` (the
//! cancellation signals that reach whoever runs a ticket) and `secrets`
//! (what a credential looks like, for the door, the way back and the
//! Security Center).
//!
//! Must never do I/O, spawn a task or know of any store, lane, model,
//! connector or controller: every crate depends on this one, so it depends
//! on none of them (Cargo enforces it).

pub mod cancel;
pub mod clock;
pub mod cost;
pub mod name;
pub mod secrets;
pub mod text;
pub mod ticket;
