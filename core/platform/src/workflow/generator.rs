//! The workflow generator, which proposes and never applies: a person's
//! request becomes a `chat` ticket (priced and traced like any, on
//! whichever bot takes it) whose reply is constrained to the generator's
//! JSON Schema ([`oshal_workflow::generate`]); the reply is then read and
//! checked like any spec (every refusal at its JSON path), and compared
//! with the latest published version of its name. What comes back is a
//! preview: nothing is published or run until a person publishes it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use specta::Type;

use super::view::{SpecIssue, SpecSource, Validation};
use super::{SpecChange, WorkflowError, Workflows};
use crate::controller::CoreEvent;
use crate::ticket::{NewTicket, TicketId, TicketState};
use oshal_workflow::generate;

/// The longest a generation may take before the preview gives up on it.
const WAIT: Duration = Duration::from_secs(300);
/// The most tokens a generated spec may take.
const MAX_TOKENS: u32 = 2048;
/// The most of the model's reply a preview shows.
const MAX_REPLY_SHOWN: usize = 16 * 1024;

/// What a person asks the generator for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// What the workflow should do; 1..=4,000 bytes.
    #[schema(min_length = 1, max_length = 4000, pattern = "^[^\\u0000]*$")]
    pub request: String,
    /// A published definition to change (its latest version); a new one if absent.
    #[serde(default)]
    #[schema(pattern = "^[a-z][a-z0-9-]{0,63}$")]
    pub based_on: Option<String>,
    /// A known tenant; the token's tenant, or `default`, if absent.
    #[serde(default)]
    #[schema(value_type = Option<crate::ticket::TenantId>)]
    pub tenant: Option<String>,
}

/// The generator's proposal: checked, compared, not applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Generated {
    /// The ticket that asked the model (its cost, its bot, its timeline).
    pub ticket: TicketId,
    /// What the model answered (at most 16 KiB shown).
    pub reply: String,
    /// The reply as JSON, if it was JSON.
    #[specta(type = Option<specta_typescript::Unknown>)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub spec: Option<Value>,
    /// The checks of the reply as a spec: its DAG, or every refusal at its path.
    pub validation: Validation,
    /// The latest published version of its name, if it has one.
    pub against: Option<u32>,
    /// What it changes against that version (every node, for a new one).
    pub changes: Vec<SpecChange>,
    /// What the generation cost, nano-dollars.
    #[specta(type = specta_typescript::Number)]
    pub cost_nusd: i64,
}

/// A reply read as a spec: the JSON if it was JSON, and its checks. Every
/// refusal names a path from `$`, so a preview can always say where. A
/// reply `cut` at the model's token limit that is not whole JSON is
/// refused as `truncated`: the schema held, the room ran out.
pub fn check_reply(text: &str, cut: bool) -> (Option<Value>, Validation) {
    let refused = |code: &str, message: String| Validation {
        valid: false,
        name: None,
        hash: None,
        nodes: Vec::new(),
        errors: vec![SpecIssue {
            path: "$".into(),
            code: code.into(),
            message,
        }],
    };
    match serde_json::from_str::<Value>(text.trim()) {
        Err(e) if cut => (
            None,
            refused(
                "truncated",
                format!(
                    "the model stopped at its token limit before the spec was whole ({e}); the generator allows {MAX_TOKENS} tokens of reply and the model's server may allow fewer: ask for a smaller workflow, or give the model a larger context"
                ),
            ),
        ),
        Err(e) => (
            None,
            refused(
                "parse",
                format!(
                    "the model's reply is not JSON ({e}); a model that takes a response schema answers JSON"
                ),
            ),
        ),
        Ok(v) if !v.is_object() => (
            Some(v),
            refused(
                "parse",
                "the reply is not a JSON object, so not a spec".into(),
            ),
        ),
        Ok(v) => {
            let validation = super::validate(&SpecSource { spec: v.clone() });
            (Some(v), validation)
        }
    }
}

impl Workflows {
    /// Asks a bot's model for a spec and previews it; publishes nothing.
    pub async fn generate(&self, req: GenerateRequest) -> Result<Generated, WorkflowError> {
        if req.request.trim().is_empty() || req.request.len() > generate::MAX_REQUEST {
            return Err(WorkflowError::Invalid {
                field: "request".into(),
                reason: format!(
                    "{} bytes; a request is 1..={} bytes of text",
                    req.request.len(),
                    generate::MAX_REQUEST
                ),
            });
        }
        let controller = self.inner.controller.clone();
        let tenant = controller.known_tenant(req.tenant.as_deref()).await?;
        let current = match &req.based_on {
            Some(name) => Some(self.inner.definitions.spec(&tenant, name, None)?.0),
            None => None,
        };
        let connectors: Vec<String> = controller
            .connectors()
            .map(|c| {
                c.list()
                    .into_iter()
                    .filter(|v| v.enabled)
                    .map(|v| v.id)
                    .collect()
            })
            .unwrap_or_default();
        // A generation no bot can take would wait for nothing.
        let takers = controller.bots().await;
        if !takers
            .iter()
            .any(|b| b.live && b.skills.iter().any(|s| s.as_str() == "chat"))
        {
            return Err(WorkflowError::Conflict(
                "no live bot takes chat tickets, so no model can write the spec; start a node (or a local pool) first".into(),
            ));
        }
        let mut events = controller.subscribe();
        let submitted = controller
            .submit(NewTicket {
                kind: "chat".into(),
                payload: json!({
                    "system": generate::system_prompt(),
                    "prompt": generate::user_prompt(&req.request, current.as_ref()),
                    "max_tokens": MAX_TOKENS,
                    "response_schema": generate::reply_schema(&connectors),
                }),
                tenant: Some(tenant.to_string()),
                max_attempts: Some(1),
                ..NewTicket::default()
            })
            .await?;
        let ticket = submitted.id;
        let deadline = tokio::time::Instant::now() + WAIT;
        let view = loop {
            let view = controller.ticket(ticket).await?;
            if super::tickets::ended(view.state, view.attempts, view.max_attempts) {
                break view;
            }
            // Woken by the ticket's own transitions, or each second.
            let tick = tokio::time::sleep(Duration::from_secs(1));
            tokio::pin!(tick);
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => {
                        return Err(WorkflowError::Conflict(format!(
                            "the generator's ticket {ticket} did not end within {} s; it goes on, and its reply will be on the ticket",
                            WAIT.as_secs()
                        )));
                    }
                    () = &mut tick => break,
                    e = events.recv() => match e {
                        Ok(CoreEvent::TicketsTransitioned { transitions })
                            if transitions.iter().any(|t| t.ticket == ticket) => break,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            (&mut tick).await;
                            break;
                        }
                        _ => {}
                    },
                }
            }
        };
        let reply = view
            .result
            .as_ref()
            .and_then(|r| r.get("text"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let cut = view
            .result
            .as_ref()
            .and_then(|r| r.get("cut"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let (spec, validation) = if view.state == TicketState::Succeeded {
            check_reply(&reply, cut)
        } else {
            let why = view
                .error
                .clone()
                .unwrap_or_else(|| format!("it ended {}", view.state));
            check_reply_failed(&why)
        };
        let (against, changes) = match (&spec, validation.valid) {
            (Some(s), true) => {
                let diff = self.inner.definitions.compare(&tenant, s);
                (diff.against, diff.changes)
            }
            _ => (None, Vec::new()),
        };
        Ok(Generated {
            ticket,
            reply: crate::text::clip(&reply, MAX_REPLY_SHOWN).to_owned(),
            spec,
            validation,
            against,
            changes,
            cost_nusd: view.cost.cost_nusd,
        })
    }
}

/// The model gave no reply: the preview says why, at `$`.
fn check_reply_failed(why: &str) -> (Option<Value>, Validation) {
    (
        None,
        Validation {
            valid: false,
            name: None,
            hash: None,
            nodes: Vec::new(),
            errors: vec![SpecIssue {
                path: "$".into(),
                code: "model".into(),
                message: format!("the generator's ticket did not succeed: {why}"),
            }],
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z0-9_ ${}.:-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("api_version".to_owned()),
                        Just("name".to_owned()),
                        Just("nodes".to_owned()),
                        Just("task".to_owned()),
                        Just("kind".to_owned()),
                        Just("payload".to_owned()),
                        Just("dependencies".to_owned()),
                        Just("timeouts".to_owned()),
                        "[a-z_]{1,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn holds(text: &str) -> Result<(), TestCaseError> {
        let (_, v) = check_reply(text, false);
        prop_assert!(v.valid == v.errors.is_empty(), "{v:?}");
        for e in &v.errors {
            prop_assert!(e.path.starts_with('$'), "an error with no path: {e:?}");
        }
        Ok(())
    }

    proptest! {
        /// Whatever a model answers is either a valid spec or refused with
        /// the path of what is wrong.
        #[test]
        fn every_reply_is_valid_or_refused_at_a_path(text in ".{0,200}") {
            holds(&text)?;
        }

        #[test]
        fn every_json_reply_is_valid_or_refused_at_a_path(v in json_value()) {
            holds(&v.to_string())?;
        }
    }

    #[test]
    fn a_spec_shaped_reply_passes_and_prose_is_refused_at_the_root() {
        let prompt = generate::system_prompt();
        let example = &prompt[prompt.find("Example: ").unwrap() + "Example: ".len()..];
        let (spec, v) = check_reply(example, false);
        assert!(v.valid && spec.is_some(), "{v:?}");
        let (spec, v) = check_reply("I am the built-in offline model; I write no JSON.", false);
        assert!(spec.is_none() && !v.valid);
        assert_eq!(
            (v.errors[0].path.as_str(), v.errors[0].code.as_str()),
            ("$", "parse")
        );
        let (_, v) = check_reply("\"a string\"", false);
        assert_eq!(v.errors[0].path, "$");
    }

    #[test]
    fn a_reply_cut_at_its_token_limit_is_refused_as_truncated() {
        let prompt = generate::system_prompt();
        let example = &prompt[prompt.find("Example: ").unwrap() + "Example: ".len()..];
        let half = &example[..example.len() / 2];
        let (spec, v) = check_reply(half, true);
        assert!(spec.is_none() && !v.valid);
        assert_eq!(
            (v.errors[0].path.as_str(), v.errors[0].code.as_str()),
            ("$", "truncated")
        );
        assert!(v.errors[0].message.contains("token limit"), "{v:?}");
        // Not cut: the same text is a parse error; whole JSON is read
        // whatever the flag says.
        assert_eq!(check_reply(half, false).1.errors[0].code, "parse");
        assert!(check_reply(example, true).1.valid);
    }
}
