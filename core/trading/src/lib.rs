//! The trading desk's domain: Signal → Risk → Execute → Ledger → Recap,
//! every fill tied to its signal.
//!
//! What will live here, as pure logic a practitioner of NautilusTrader or
//! LEAN recognises: seeded market data, strategies that turn a window of
//! data into a signal (LEAN's Insight), the risk engine with its typed
//! denials (`NOTIONAL_EXCEEDS_MAX_PER_ORDER`, …), orders with NautilusTrader's
//! states, a matching engine, positions and a double-entry ledger.
//!
//! The rule of this crate: no I/O, no clock of its own, and no dependency on
//! the controller, the stores or any adapter (Cargo enforces it: the only
//! platform crate it may name is `oshal-kernel`, and the layering test in
//! `core/cli/tests/layering.rs` checks it). A thin adapter in the platform
//! wires it to tickets, bots, the cost ledger and the API.
//!
//! Here so far: exact prices and quantities ([`fixed`]), an instrument's
//! steps and bounds ([`instrument`]), the order lifecycle ([`order`]:
//! NautilusTrader's statuses and events, the table of what may follow
//! what), the risk engine's pre-trade checks ([`risk`]: every check
//! recorded with its limit and what it observed, each denial a stable
//! code), netting positions with their realized and unrealized P&L
//! ([`position`]), the double-entry ledger of reservations, trades and
//! commissions ([`ledger`]), the venue's matching engine ([`book`]:
//! price-time priority, GTC, GTD, IOC, FOK, post-only), fills from bars
//! ([`bars`]: open → high → low → close, stops, stop-limits, gaps filled at
//! the open), market data
//! ([`market`]: seeded quotes, bars, CSV import), the simulated venue as a
//! party of its own ([`venue`]: the book it shows at a quote, orders keyed
//! by their client order id so a retry never fills twice, limit orders
//! resting until filled, expired or canceled, reports read again for
//! reconciliation, and its wire format to a venue elsewhere) and the
//! strategies'
//! signals ([`signal`]: LEAN's Insight from an EMA crossover, a z-score and
//! a breakout, with the hash of their inputs), and the desk that runs them
//! together ([`desk`]: quotes → bars → signal → risk → the venue's book →
//! fills, position and ledger, entries at market or as resting limits,
//! every signal's disposition, the trading state of the desk and of each
//! bot, the kill switch in three levels and a hash of the fill stream for
//! replays), and the
//! recap of what each signal, strategy and day earned net of fees and of
//! the spend behind its signals ([`recap`]).

pub mod bars;
pub mod book;
pub mod desk;
pub mod fixed;
pub mod instrument;
pub mod ledger;
pub mod market;
pub mod order;
pub mod position;
pub mod recap;
pub mod risk;
pub mod signal;
pub mod venue;
