//! What changed between two versions of a spec, field by field, so moving
//! to a newer version (or publishing a generated one) shows its diff
//! first. Nodes are matched by name, not by place: moving a node in the
//! list is no change, renaming one is a removal and an addition. Each
//! change names its path with the node's name
//! (`$.nodes[transcode].timeouts.heartbeat`), the value before and after.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::spec::WorkflowSpec;

/// One difference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `$.nodes[review].approval.timeout`, `$.inputs.codec.default`.
    pub path: String,
    pub op: ChangeOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Added,
    Removed,
    Changed,
}

/// The changes that take `before` to `after`, in the order of the fields
/// (nodes in `after`'s order, then the removed ones).
pub fn diff(before: &WorkflowSpec, after: &WorkflowSpec) -> Vec<Change> {
    let (mut b, mut a) = (as_object(before), as_object(after));
    let (b_nodes, a_nodes) = (take_nodes(&mut b), take_nodes(&mut a));
    let mut out = Vec::new();
    walk(
        "$",
        Some(&Value::Object(b)),
        Some(&Value::Object(a)),
        &mut out,
    );
    for (name, node) in &a_nodes {
        let old = b_nodes.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        walk(&format!("$.nodes[{name}]"), old, Some(node), &mut out);
    }
    for (name, node) in &b_nodes {
        if !a_nodes.iter().any(|(n, _)| n == name) {
            walk(&format!("$.nodes[{name}]"), Some(node), None, &mut out);
        }
    }
    out
}

fn as_object(spec: &WorkflowSpec) -> Map<String, Value> {
    match serde_json::to_value(spec) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The nodes, by name, taken out of the spec's object.
fn take_nodes(spec: &mut Map<String, Value>) -> Vec<(String, Value)> {
    let Some(Value::Array(nodes)) = spec.remove("nodes") else {
        return Vec::new();
    };
    nodes
        .into_iter()
        .map(|mut n| {
            let name = n
                .as_object_mut()
                .and_then(|o| o.remove("name"))
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            (name, n)
        })
        .collect()
}

fn walk(path: &str, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<Change>) {
    match (before, after) {
        (None, None) => {}
        (Some(b), Some(a)) if b == a => {}
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            for (k, av) in a {
                walk(&format!("{path}.{k}"), b.get(k), Some(av), out);
            }
            for (k, bv) in b {
                if !a.contains_key(k) {
                    walk(&format!("{path}.{k}"), Some(bv), None, out);
                }
            }
        }
        (Some(b), Some(a)) => out.push(Change {
            path: path.to_owned(),
            op: ChangeOp::Changed,
            before: Some(b.clone()),
            after: Some(a.clone()),
        }),
        (None, Some(a)) => out.push(Change {
            path: path.to_owned(),
            op: ChangeOp::Added,
            before: None,
            after: Some(a.clone()),
        }),
        (Some(b), None) => out.push(Change {
            path: path.to_owned(),
            op: ChangeOp::Removed,
            before: Some(b.clone()),
            after: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(yaml: &str) -> WorkflowSpec {
        WorkflowSpec::from_text(yaml).unwrap()
    }

    const V1: &str = r#"
api_version: oshal.dev/workflow/v1
name: ship
inputs: { env: { default: staging } }
nodes:
  - { name: build, timeouts: { start_to_close: 1m }, task: { kind: chat, payload: { prompt: build } } }
  - { name: test, dependencies: [build], timeouts: { start_to_close: 1m }, task: { kind: chat, payload: { prompt: test } } }
"#;

    #[test]
    fn the_same_spec_has_no_changes_and_order_is_not_a_change() {
        assert!(diff(&spec(V1), &spec(V1)).is_empty());
        let swapped = r#"
api_version: oshal.dev/workflow/v1
name: ship
inputs: { env: { default: staging } }
nodes:
  - { name: test, dependencies: [build], timeouts: { start_to_close: 1m }, task: { kind: chat, payload: { prompt: test } } }
  - { name: build, timeouts: { start_to_close: 1m }, task: { kind: chat, payload: { prompt: build } } }
"#;
        assert!(diff(&spec(V1), &spec(swapped)).is_empty());
    }

    #[test]
    fn changes_are_named_by_node_and_field() {
        let v2 = r#"
api_version: oshal.dev/workflow/v1
name: ship
inputs: { env: { default: prod }, region: { default: eu } }
nodes:
  - { name: build, timeouts: { start_to_close: 5m }, task: { kind: chat, payload: { prompt: build } } }
  - { name: deploy, dependencies: [build], timeouts: { start_to_close: 1m }, task: { kind: chat, payload: { prompt: go } } }
"#;
        let d = diff(&spec(V1), &spec(v2));
        let paths: Vec<(&str, ChangeOp)> = d.iter().map(|c| (c.path.as_str(), c.op)).collect();
        assert_eq!(
            paths,
            [
                ("$.inputs.env.default", ChangeOp::Changed),
                ("$.inputs.region", ChangeOp::Added),
                ("$.nodes[build].timeouts.start_to_close", ChangeOp::Changed),
                ("$.nodes[deploy]", ChangeOp::Added),
                ("$.nodes[test]", ChangeOp::Removed),
            ]
        );
        assert_eq!(d[0].before, Some(json!("staging")));
        assert_eq!(d[0].after, Some(json!("prod")));
    }
}
