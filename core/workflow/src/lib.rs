//! Workflows: build, ticket and video pipelines as DAGs whose nodes are
//! tickets, in the words of Argo, Temporal and GitHub Actions.
//!
//! - [`spec`]: the versioned `WorkflowSpec` (JSON or YAML): tasks,
//!   approvals, fan-outs (`matrix`, `with_items`), `depends` expressions
//!   ([`expr`]) or plain `dependencies`, retry policies, timeouts
//!   ([`span`]), GitHub Actions' concurrency groups, memoization.
//! - [`validate`]: the checks of meaning, each refusal at the JSON path of
//!   its field; a [`validate::Workflow`] is a spec that passed, with its DAG.
//! - [`history`] and [`run`]: a run is its append-only history; its state
//!   (Argo's node phases, Temporal's run states) is rebuilt from it, and
//!   [`run::Run::decide`] proposes the next events as a pure function of
//!   that state and the time. Placeholders (`${{ inputs.x }}`, …) are
//!   resolved by [`template`]; inputs and outputs hashed by [`hash`];
//!   [`forecast`] says when a run will end and which nodes decide it.
//! - [`diff`]: what changed between two versions of a spec, node by node
//!   and field by field; [`generate`]: what the workflow generator asks a
//!   model (a prompt, and the JSON Schema its reply is constrained to).
//!
//! The rule of this crate: no I/O and no dependency on the controller, the
//! stores or any adapter (Cargo enforces it; the layering test in
//! `core/cli/tests/layering.rs` checks it). The platform's adapter
//! (`oshal_core::workflow`) records the events, submits each scheduled
//! node as a ticket under its key and reports the tickets' ends back.

pub mod diff;
pub mod expr;
pub mod forecast;
pub mod generate;
pub mod hash;
pub mod history;
pub mod run;
pub mod span;
pub mod spec;
pub mod template;
pub mod validate;
