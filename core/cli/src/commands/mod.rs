//! One module per command: each has its `Args` (what was typed) and a
//! `run` that does it.

pub mod bench;
pub mod bots;
pub mod cancel;
pub mod connectors;
pub mod db_setup;
pub mod desk;
pub mod health;
pub mod mesh;
pub mod node;
pub mod openapi;
pub mod ops;
pub mod security;
pub mod serve;
pub mod soak;
pub mod submit;
pub mod tenants;
pub mod ticket;
pub mod tickets;
pub mod tokens;
pub mod trading;
pub mod venue;
pub mod workflow;
