//! `WorkflowSpec`: what a workflow is, as its author writes it in JSON or
//! YAML.
//!
//! Nodes are tasks (a ticket of a kind, with its payload), approvals (the
//! run waits for a person, with an input schema, a timeout and an
//! escalation), fan-outs of a task (`matrix`, `with_items`), and
//! sub-workflows: a task of kind [`SUB_WORKFLOW`] whose payload
//! (`{definition, version?, inputs?}`) names a published definition that
//! runs as a run of its own. Edges are
//! `depends` expressions or plain `dependencies`, never both on one node.
//! Per node: Temporal's retry policy and timeouts, GitHub Actions'
//! concurrency group, and memoization by the hash of the resolved input.
//!
//! Parsing refuses a document that is not of this shape, naming the JSON
//! path of the field (`$.nodes[2].retry.maximum_attempts`); the checks of
//! meaning (cycles, references, timeouts) are in [`crate::validate`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::span::Span;

/// The task kind of a sub-workflow: a published definition run as a run
/// of its own, whose end is the unit's.
pub const SUB_WORKFLOW: &str = "workflow";
/// The one `api_version` this crate reads.
pub const API_VERSION: &str = "oshal.dev/workflow/v1";
/// The most nodes one spec may hold.
pub const MAX_NODES: usize = 200;
/// The most items one fan-out may expand to.
pub const MAX_ITEMS: usize = 10_000;
/// The most bytes a spec may take, as JSON.
pub const MAX_SPEC_BYTES: usize = 48 * 1024;

/// A workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Always `oshal.dev/workflow/v1`.
    pub api_version: String,
    /// 1 to 64 of a-z, 0-9, '-', starting with a letter.
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The run's parameters; a run gives each or takes its default.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, InputSpec>,
    /// The retry policy and timeouts of every node that gives none.
    #[serde(default, skip_serializing_if = "Defaults::is_empty")]
    pub defaults: Defaults,
    /// The longest a run may take before it ends `TimedOut`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Span>,
    pub nodes: Vec<NodeSpec>,
}

/// One parameter of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// With none, a run must give the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// What every node inherits unless it says otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
}

impl Defaults {
    fn is_empty(&self) -> bool {
        self.retry.is_none() && self.timeouts.is_none()
    }
}

/// One node of the DAG: exactly one of `task` and `approval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// 1 to 48 of a-z, 0-9, '-', '_', starting with a letter; unique.
    pub name: String,
    /// An expression over upstream nodes' outcomes (`a.Succeeded && !b.Failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends: Option<String>,
    /// Nodes that must all succeed (or be skipped) first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalSpec>,
    /// Run the task once per combination: each key's list, crossed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<BTreeMap<String, Items>>,
    /// Run the task once per item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_items: Option<Items>,
    /// The most items of a fan-out running at once; all if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Reuse the output of an earlier run of the same resolved input.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub memoize: bool,
}

impl NodeSpec {
    pub fn is_fan_out(&self) -> bool {
        self.matrix.is_some() || self.with_items.is_some()
    }
}

/// A fan-out's items: a list, or one `${{ … }}` that gives a list when
/// the node starts (an input, or an upstream node's output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Items {
    List(Vec<Value>),
    From(String),
}

/// The ticket a task node submits. Strings of `payload` may hold
/// `${{ inputs.x }}`, `${{ item }}`, `${{ matrix.k }}` and
/// `${{ nodes.a.output… }}` (see [`crate::template`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub kind: String,
    #[serde(default = "empty_object")]
    pub payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// A node where the run waits for a person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSpec {
    /// Who may decide, by name (a token's label, or `operator`); at least one.
    pub approvers: Vec<String>,
    /// What the approver must fill in, as JSON Schema; none if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// With no decision by then, the node fails (`timeout.approval`).
    pub timeout: Span,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
}

/// Who else is asked, and when, if no one has decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub after: Span,
    pub to: Vec<String>,
}

/// Temporal's retry policy: the wait before attempt n+1 is
/// `initial_interval × backoff_coefficientⁿ⁻¹`, at most `maximum_interval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    #[serde(default = "one_second")]
    pub initial_interval: Span,
    /// 1.0 to 10.0.
    #[serde(default = "two")]
    pub backoff_coefficient: f64,
    #[serde(default = "one_minute")]
    pub maximum_interval: Span,
    /// Attempts in all, the first included; 1 to 20.
    pub maximum_attempts: u32,
    /// Error types that end the node at once (`failed`, `dead`,
    /// `refused`, `timeout.start_to_close`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_retryable_error_types: Vec<String>,
}

fn one_second() -> Span {
    Span::from_ms(1_000).expect("in range")
}
fn one_minute() -> Span {
    Span::from_ms(60_000).expect("in range")
}
fn two() -> f64 {
    2.0
}

impl RetryPolicy {
    /// The wait after failed attempt `n` (from 1) before the next.
    pub fn delay_after(&self, n: u32) -> Span {
        let base = self.initial_interval.ms() as f64;
        let exp = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
        let ms = (base * self.backoff_coefficient.powi(exp)).min(self.maximum_interval.ms() as f64);
        // Bounded by maximum_interval, itself at most 30 days.
        Span::from_ms(ms as u64).unwrap_or(self.maximum_interval)
    }

    pub fn retries(&self, error_type: &str) -> bool {
        !self
            .non_retryable_error_types
            .iter()
            .any(|t| t == error_type)
    }
}

/// Temporal's activity timeouts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// From submitted to a bot starting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_to_start: Option<Span>,
    /// From a bot starting it to its end: required for every task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_to_close: Option<Span>,
    /// The longest gap between two reports of progress while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat: Option<Span>,
}

/// GitHub Actions' concurrency, per unit: in one group (across every run
/// of the tenant) at most one unit runs and one waits; a newer one waiting
/// supersedes the older (which ends `superseded`), and with
/// `cancel_in_progress` it also supersedes the one running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// May hold `${{ inputs.x }}` and `${{ run.id }}`: `deploy-${{ inputs.branch }}`.
    pub group: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancel_in_progress: bool,
}

/// A document this crate will not read, at the JSON path of the field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SpecError {
    /// `$` for the document, `$.nodes[2].depends` for a field.
    pub path: String,
    /// A stable word for the kind of fault: `parse`, `cycle`, `undefined`, …
    pub code: String,
    pub message: String,
}

impl SpecError {
    pub fn new(path: impl Into<String>, code: &str, message: impl Into<String>) -> SpecError {
        SpecError {
            path: path.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

impl WorkflowSpec {
    /// Reads a spec from JSON, or refuses it naming the field.
    pub fn from_json(text: &str) -> Result<WorkflowSpec, SpecError> {
        check_size(text)?;
        let mut de = serde_json::Deserializer::from_str(text);
        let spec = serde_path_to_error::deserialize(&mut de).map_err(|e| parse_error(&e))?;
        de.end()
            .map_err(|e| SpecError::new("$", "parse", e.to_string()))?;
        Ok(spec)
    }

    /// Reads a spec from YAML, or refuses it naming the field.
    pub fn from_yaml(text: &str) -> Result<WorkflowSpec, SpecError> {
        check_size(text)?;
        let de = serde_norway::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| parse_error(&e))
    }

    /// JSON when the text starts with `{`, YAML otherwise.
    pub fn from_text(text: &str) -> Result<WorkflowSpec, SpecError> {
        if text.trim_start().starts_with('{') {
            Self::from_json(text)
        } else {
            Self::from_yaml(text)
        }
    }

    /// Reads a spec already parsed as JSON (an API body's field).
    pub fn from_value(value: Value) -> Result<WorkflowSpec, SpecError> {
        let text = value.to_string();
        check_size(&text)?;
        serde_path_to_error::deserialize(value).map_err(|e| parse_error(&e))
    }

    pub fn node(&self, name: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The hash a run is pinned to: SHA-256 of the canonical JSON.
    pub fn hash(&self) -> String {
        crate::hash::of(&serde_json::to_value(self).unwrap_or(Value::Null))
    }

    /// The node's retry policy: its own, the spec's default, or none.
    pub fn retry_of<'a>(&'a self, node: &'a NodeSpec) -> Option<&'a RetryPolicy> {
        node.retry.as_ref().or(self.defaults.retry.as_ref())
    }

    /// The node's timeouts, each its own or the spec's default.
    pub fn timeouts_of(&self, node: &NodeSpec) -> Timeouts {
        let own = node.timeouts.clone().unwrap_or_default();
        let d = self.defaults.timeouts.clone().unwrap_or_default();
        Timeouts {
            schedule_to_start: own.schedule_to_start.or(d.schedule_to_start),
            start_to_close: own.start_to_close.or(d.start_to_close),
            heartbeat: own.heartbeat.or(d.heartbeat),
        }
    }
}

fn check_size(text: &str) -> Result<(), SpecError> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(SpecError::new(
            "$",
            "too_large",
            format!(
                "the spec is {} bytes; the limit is {MAX_SPEC_BYTES} bytes",
                text.len()
            ),
        ));
    }
    Ok(())
}

fn parse_error<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> SpecError {
    let message = e.inner().to_string();
    let at = oshal_kernel::text::field_path(&e.path().to_string(), &message);
    let path = if at == "body" {
        "$".to_owned()
    } else {
        format!("$.{at}")
    };
    // YAML's messages end with where in the text; keep them.
    SpecError::new(path, "parse", message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
api_version: oshal.dev/workflow/v1
name: small
defaults:
  timeouts: { start_to_close: 5m }
nodes:
  - name: a
    task: { kind: chat, payload: { prompt: "hello" } }
  - name: b
    dependencies: [a]
    task: { kind: chat, payload: { prompt: "${{ nodes.a.output.text }}" } }
"#;

    #[test]
    fn yaml_and_json_read_the_same_spec_and_hash_alike() {
        let from_yaml = WorkflowSpec::from_yaml(SMALL).unwrap();
        let json = serde_json::to_string_pretty(&from_yaml).unwrap();
        let from_json = WorkflowSpec::from_json(&json).unwrap();
        assert_eq!(from_yaml, from_json);
        assert_eq!(from_yaml.hash(), from_json.hash());
        assert!(from_yaml.hash().starts_with("sha256:"));
        assert_eq!(
            from_yaml.timeouts_of(&from_yaml.nodes[1]).start_to_close,
            Some(Span::parse("5m").unwrap())
        );
    }

    #[test]
    fn a_misfit_field_is_named_by_its_json_path() {
        let bad = SMALL.replace("dependencies: [a]", "dependencies: [a]\n    retries: 3");
        let e = WorkflowSpec::from_yaml(&bad).unwrap_err();
        assert_eq!(e.path, "$.nodes[1].retries", "{e}");
        let bad = SMALL.replace("start_to_close: 5m", "start_to_close: 5 minutes");
        let e = WorkflowSpec::from_yaml(&bad).unwrap_err();
        assert_eq!(e.path, "$.defaults.timeouts.start_to_close", "{e}");
        let e = WorkflowSpec::from_json(r#"{"api_version": "x", "name": "n"}"#).unwrap_err();
        assert_eq!(e.path, "$.nodes", "{e}");
        let e =
            WorkflowSpec::from_json(&format!("{{\"name\": \"{}\"}}", "x".repeat(MAX_SPEC_BYTES)))
                .unwrap_err();
        assert_eq!(e.code, "too_large");
    }

    #[test]
    fn backoff_grows_to_its_ceiling() {
        let p = RetryPolicy {
            initial_interval: Span::parse("1s").unwrap(),
            backoff_coefficient: 2.0,
            maximum_interval: Span::parse("5s").unwrap(),
            maximum_attempts: 6,
            non_retryable_error_types: vec!["refused".into()],
        };
        let waits: Vec<u64> = (1..=5).map(|n| p.delay_after(n).ms()).collect();
        assert_eq!(waits, [1_000, 2_000, 4_000, 5_000, 5_000]);
        assert!(!p.retries("refused"));
        assert!(p.retries("failed"));
    }
}
