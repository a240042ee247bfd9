//! The operations loop's domain: Monitor → Gather → Diagnose → Heal →
//! Report, with prep → box-in → orchestrate.
//!
//! What will live here, as pure logic in the field's own vocabulary:
//! alerts with Alertmanager's states and fingerprints, correlation rules
//! that open incidents (Triggered → Acknowledged → Mitigated → Resolved),
//! runbooks matched by labels, the plan of an investigation, diagnoses whose
//! every claim links to stored evidence, and postmortems drafted from what
//! happened.
//!
//! The rule of this crate: no I/O and no dependency on the controller, the
//! stores or any adapter (Cargo enforces it; the layering test in
//! `core/cli/tests/layering.rs` checks it). A thin adapter in the platform
//! wires it to tickets, bots, connectors (read-only investigation tools, one
//! scoped, expiring write grant after approval) and the API.
