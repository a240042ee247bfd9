//! End-to-end tests across processes: the real `oshal` binary over HTTP, a
//! `kill -9` mid-load, a fleet of `oshal node` processes on PostgreSQL and
//! Redis, and a real language model server.

#![allow(clippy::unwrap_used)]

mod connectors;
mod contract;
mod crash;
mod deploy;
mod desk;
mod desk_venue;
mod desktop;
mod fleet;
mod http;
mod mesh;
mod model;
mod ops;
mod security;
mod soak;
mod tailnet;
mod tenants;
mod tls;
mod trading;
mod ui;
mod workflow;
