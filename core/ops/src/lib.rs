//! The operations loop's domain: Monitor → Gather → Diagnose → Heal →
//! Report, with prep → box-in → orchestrate.
//!
//! What lives here, as pure logic in the field's own vocabulary:
//! - `alert`: alerts with Alertmanager's states and fingerprints over the
//!   labels the operator chose, PagerDuty's severities;
//! - `intake`: Alertmanager's webhook and PagerDuty Events v2 read from
//!   their own payloads, one bad alert refused at its path and the rest
//!   taken;
//! - `rule`: correlation rules (matchers as Alertmanager writes them,
//!   grouping labels, a window, a threshold, firing only, resolve on
//!   first, last, all or never), silences and maintenance windows;
//! - `incident`: Triggered → Acknowledged → Mitigated → Resolved, one table,
//!   with the timeline a postmortem is drafted from;
//! - `monitor`: one tenant's alerts and incidents as a fold over recorded
//!   events (decide, record, apply), so a restart rebuilds the same state;
//! - `evidence`: every tool call kept (tool, parameters, status, result,
//!   content hash, a replayable query) and the bounds an investigation
//!   runs within (steps, wall time, model tokens);
//! - `diagnose`: root causes ranked over the platform's topology from
//!   observations, each tied to its evidence; "inconclusive" kept as an
//!   answer; a model may reorder the causes found, never add one.
//!
//! - `change`: change events (nodes joining and leaving, tickets requeued,
//!   lanes reset, budgets, deploys), kept as evidence;
//! - `gather`: the investigation's read-only tools (what each asks and
//!   answers, the same lookup on the API) and the observations read from
//!   their answers, each tied to its evidence;
//! - `runbook`: prep: runbooks matched by an alert's name and labels,
//!   toolsets with their prerequisites, the explicit plan of tasks;
//! - `investigation`: a Gather ticket's findings checked (evidence intact,
//!   numbered, within bounds and plan) and the diagnosis computed from
//!   them, never taken from the bot.
//! - `report`: the postmortem drafted from the record (summary, impact,
//!   root causes with their evidence, trigger, detection, resolution,
//!   action items, lessons, the timeline, MTTA, MTTR, what each
//!   investigation cost), edited in its prose, then published.
//!
//! - `burn`: a tenant's spend against the pace that makes its budget
//!   last (the SRE workbook's multiwindow, multi-burn-rate pairs);
//! - `heal`: heal rules matched against a diagnosis (once per incident),
//!   the concrete action with its dry run and blast radius, a heal's life
//!   from pending approval to its re-check.
//! - `eval`: the faults of a catalogue scored against the record (the
//!   injected cause's rank, claims backed by evidence, steps, cost, time
//!   to diagnosis, heals approved and re-checked).
//!
//! The rule of this crate: no I/O and no dependency on the controller, the
//! stores or any adapter (Cargo enforces it; the layering test in
//! `core/cli/tests/layering.rs` checks it). A thin adapter in the platform
//! (`oshal_core::ops`) wires it to the journal and the API.

pub mod alert;
pub mod burn;
pub mod change;
pub mod diagnose;
pub mod eval;
pub mod evidence;
pub mod gather;
pub mod heal;
pub mod incident;
pub mod intake;
pub mod investigation;
pub mod monitor;
pub mod report;
pub mod rule;
pub mod runbook;
