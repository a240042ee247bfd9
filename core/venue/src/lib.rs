//! A paper venue of its own: `oshal venue serve`.
//!
//! The trading domain's simulated venue ([`oshal_trading::venue`]: the
//! book a quote shows, orders keyed by their client order id) behind a
//! REST and WebSocket API ([`server`]), every order and report kept in
//! SQLite ([`store`]) so a restarted venue answers a retried order as it
//! did the first time. It is a replay venue: an order names the market it
//! trades on (an instrument and a seed, [`markets`]) and the quote it
//! meets, so a desk trading the same seed gets the fills it would get in
//! process.
//!
//! A desk reaches it only through a signed connector ([`manifest`]) whose
//! API key the broker holds: the venue keeps the SHA-256 of each key it
//! accepts, never the key, and no bot ever sees it.

pub mod manifest;
pub mod markets;
pub mod server;
pub mod store;

pub use server::{PaperVenue, router, serve};
pub use store::VenueStore;
