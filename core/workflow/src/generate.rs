//! What the workflow generator asks a model: a prompt that describes the
//! spec, and a JSON Schema its reply is constrained to (llama.cpp turns
//! it into a grammar; OpenAI-compatible servers take it as
//! `response_format`), so even a small model answers parsable JSON. The
//! schema is narrower than the spec (at most 5 nodes of chat and tool
//! tasks and approvals, short texts, `dependencies`, timeouts from a short
//! list), which keeps the grammar small and bounds the reply, so it ends
//! well within the generator's token limit; whatever comes back is still checked
//! like any spec ([`crate::validate`]) and is never applied by itself.

use serde_json::{Value, json};

use crate::spec::{API_VERSION, WorkflowSpec};

/// The most nodes a generated spec may have.
pub const MAX_GENERATED_NODES: u64 = 5;
/// The longest request a person may write.
pub const MAX_REQUEST: usize = 4000;

/// The spans a generated timeout is chosen from.
const SPANS: [&str; 6] = ["30s", "1m", "5m", "10m", "30m", "1h"];

/// The JSON Schema a generated spec's reply follows. `connectors` are the
/// connectors a `tool` task may name (none: no tool tasks).
pub fn reply_schema(connectors: &[String]) -> Value {
    let node_name = json!({ "type": "string", "pattern": "^[a-z][a-z0-9_]{0,23}$" });
    let chat = json!({
        "type": "object",
        "properties": {
            "kind": { "const": "chat" },
            "payload": {
                "type": "object",
                "properties": { "prompt": { "type": "string", "minLength": 1, "maxLength": 160 } },
                "required": ["prompt"],
                "additionalProperties": false
            }
        },
        "required": ["kind", "payload"],
        "additionalProperties": false
    });
    let mut tasks = vec![chat];
    if !connectors.is_empty() {
        tasks.push(json!({
            "type": "object",
            "properties": {
                "kind": { "const": "tool" },
                "payload": {
                    "type": "object",
                    "properties": {
                        "connector": { "enum": connectors },
                        "operation": { "type": "string", "pattern": "^[a-z][a-z0-9_]{0,47}$" },
                        "prompt": { "type": "string", "maxLength": 120 }
                    },
                    "required": ["connector", "operation"],
                    "additionalProperties": false
                }
            },
            "required": ["kind", "payload"],
            "additionalProperties": false
        }));
    }
    let dependencies = json!({ "type": "array", "maxItems": 3, "items": node_name });
    let task_node = json!({
        "type": "object",
        "properties": {
            "name": node_name,
            "dependencies": dependencies,
            "timeouts": {
                "type": "object",
                "properties": { "start_to_close": { "enum": SPANS } },
                "required": ["start_to_close"],
                "additionalProperties": false
            },
            "task": { "anyOf": tasks }
        },
        "required": ["name", "timeouts", "task"],
        "additionalProperties": false
    });
    let approval_node = json!({
        "type": "object",
        "properties": {
            "name": node_name,
            "dependencies": dependencies,
            "approval": {
                "type": "object",
                "properties": {
                    "approvers": { "type": "array", "minItems": 1, "maxItems": 2, "items": { "enum": ["operator", "tenant"] } },
                    "timeout": { "enum": SPANS }
                },
                "required": ["approvers", "timeout"],
                "additionalProperties": false
            }
        },
        "required": ["name", "approval"],
        "additionalProperties": false
    });
    json!({
        "type": "object",
        "properties": {
            "api_version": { "const": API_VERSION },
            "name": { "type": "string", "pattern": "^[a-z][a-z0-9-]{0,31}$" },
            "description": { "type": "string", "maxLength": 120 },
            "nodes": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_GENERATED_NODES,
                "items": { "anyOf": [task_node, approval_node] }
            }
        },
        "required": ["api_version", "name", "nodes"],
        "additionalProperties": false
    })
}

/// The system prompt: what a spec is, in a few lines and one example.
pub fn system_prompt() -> String {
    format!(
        "You write Oshal workflow specs as JSON. A spec has api_version \"{API_VERSION}\", a \
         lowercase name, a description and nodes. Each node has a unique snake_case name and \
         either a task (kind \"chat\" with payload.prompt, the instruction a bot's model \
         follows; or kind \"tool\" with payload.connector and payload.operation) with \
         timeouts.start_to_close, or an approval (approvers \"operator\" or \"tenant\", and a \
         timeout) where a person must decide. A node lists in dependencies the earlier nodes \
         it waits for. Example: {}",
        json!({
            "api_version": API_VERSION,
            "name": "release-notes",
            "description": "Draft release notes, have them approved, then announce them.",
            "nodes": [
                { "name": "draft", "timeouts": { "start_to_close": "5m" },
                  "task": { "kind": "chat", "payload": { "prompt": "Draft release notes from the changelog." } } },
                { "name": "review", "dependencies": ["draft"],
                  "approval": { "approvers": ["operator"], "timeout": "1h" } },
                { "name": "announce", "dependencies": ["review"], "timeouts": { "start_to_close": "1m" },
                  "task": { "kind": "chat", "payload": { "prompt": "Write the announcement." } } }
            ]
        })
    )
}

/// The user prompt: the person's request, and the current version to
/// change if there is one.
pub fn user_prompt(request: &str, current: Option<&WorkflowSpec>) -> String {
    match current.and_then(|s| serde_json::to_string(s).ok()) {
        Some(spec) => format!(
            "The current version of this workflow is:\n{spec}\n\nChange it as follows, and answer \
             the whole new spec: {request}"
        ),
        None => format!("Write a workflow spec for this: {request}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{Kinds, Workflow};

    #[test]
    fn the_example_in_the_prompt_is_a_valid_spec_that_fits_the_schema() {
        let prompt = system_prompt();
        let start = prompt.find("Example: ").unwrap() + "Example: ".len();
        let example: Value = serde_json::from_str(&prompt[start..]).unwrap();
        let spec = WorkflowSpec::from_value(example.clone()).unwrap();
        Workflow::new(spec, &Kinds(&["chat", "tool"])).expect("the example validates");
        let schema = reply_schema(&[]);
        // The example's shape is the schema's: the same top-level fields,
        // each node one of the two kinds the schema allows.
        let allowed = schema["properties"].as_object().unwrap();
        assert!(
            example
                .as_object()
                .unwrap()
                .keys()
                .all(|k| allowed.contains_key(k))
        );
        assert_eq!(
            schema["properties"]["nodes"]["items"]["anyOf"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn tool_tasks_are_offered_only_with_connectors_to_name() {
        let without = reply_schema(&[]);
        let tasks =
            &without["properties"]["nodes"]["items"]["anyOf"][0]["properties"]["task"]["anyOf"];
        assert_eq!(tasks.as_array().unwrap().len(), 1);
        let with = reply_schema(&["petstore".into()]);
        let tasks =
            &with["properties"]["nodes"]["items"]["anyOf"][0]["properties"]["task"]["anyOf"];
        assert_eq!(
            tasks[1]["properties"]["payload"]["properties"]["connector"]["enum"],
            json!(["petstore"])
        );
    }
}
