//! The production topology and the mesh: the same binaries in containers
//! (compose, Kubernetes), a TLS edge, Vault, and remote nodes over
//! Headscale/Tailscale.
//!
//! What will live here, as pure logic: the deployment as data (services,
//! containers, nodes, their addresses and health), parsed from what the
//! container runtime and the mesh's API report, and the checks a node must
//! pass before it may join (its mesh identity, its tags, its ACL).
//!
//! The rule of this crate: no I/O and no dependency on the controller, the
//! stores or any adapter (Cargo enforces it; the layering test in
//! `core/cli/tests/layering.rs` checks it). A thin adapter in the platform
//! reads the live set and draws the topology view from it.
