//! End-to-end tests across processes: the real `oshal` binary over HTTP, a
//! `kill -9` mid-load, and a real language model server.

#![allow(clippy::unwrap_used)]

mod crash;
mod http;
mod model;
