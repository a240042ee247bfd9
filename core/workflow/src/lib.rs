//! Workflows: build, ticket and video pipelines as DAGs whose nodes are
//! tickets, and the generator that proposes them.
//!
//! What will live here, as pure logic named after Argo, Temporal and GitHub
//! Actions: the versioned `WorkflowSpec` (tasks, approvals, fan-outs,
//! sub-workflows, `depends` expressions), node phases, retry policies and
//! timeouts, memoization by content hash, runs pinned to the version they
//! started on, and the validation of a generated spec against the live
//! registry (never applied without approval).
//!
//! The rule of this crate: no I/O and no dependency on the controller, the
//! stores or any adapter (Cargo enforces it; the layering test in
//! `core/cli/tests/layering.rs` checks it). A thin adapter in the platform
//! turns a run into a ticket whose children are its nodes' tickets.
