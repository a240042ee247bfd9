//! Oshal's platform as a library: everything but the window.
//!
//! A control center for fleets of AI-agent bots. Work flows down from a
//! surface (`api`) to the controller (`controller`), which persists each
//! ticket (`store`) before routing it to one bot's own lane (`lane`); the bot
//! (`bot`) runs a model (`model`) and reports back; the controller captures
//! cost once, centrally (`cost`), and streams every transition to every
//! surface. `ticket` holds the kernel types and the lifecycle state machine.
//! A bot reaches an outside system only through `connector` (auth gate,
//! runtime, effect ledger), which gets each credential from `broker`, the
//! only module that reads secrets. `security` is the detective layer: it
//! proves each preventive control live and files what it finds as tickets.
//! `trading`, `workflow`, `ops` and `mesh` are the domains' adapters: the
//! desk's paper sessions and workflow runs, whose signals and nodes are
//! tickets; the operations loop; the mesh of remote nodes, read live.
//!
//! This crate knows nothing of Tauri or IPC. Only `lane`, `store`, `model`,
//! `connector`, `broker`, `security`, `mesh`, `tls` (and the HTTP server in
//! `api`) do I/O; only the
//! controller wires adapters together. See ARCHITECTURE.md at the repository
//! root for the map.

pub mod api;
pub mod bot;
pub mod controller;
pub mod mesh;
pub mod mode;
pub mod ops;
pub mod security;
pub mod tls;
pub mod trading;
pub mod workflow;

pub use oshal_connector as connector;
pub use oshal_kernel::{cancel, clock, cost, name, secrets, text, ticket};
pub use oshal_lane as lane;
pub use oshal_model as model;
pub use oshal_store as store;
