//! Prep: runbooks matched by an alert's name and labels, toolsets with
//! their prerequisites (enabled, disabled, failed, each with why), and the
//! explicit plan of an investigation: its tasks pending, in progress or
//! done, each done one naming the evidence it produced.
//!
//! A runbook is written as the operator writes an Alertmanager route:
//! matchers over the alert's labels (`alertname` among them), and the
//! read-only tool calls worth making, each with why. The plan takes the
//! steps of every matching runbook whose tool an enabled toolset offers;
//! a step whose toolset is disabled or failed is kept aside with the
//! reason, so a reader sees what was not looked at and why. Pure logic.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use specta::Type;

use crate::alert::Labels;
use crate::rule::{Invalid, all_match, matchers};

/// Runbooks one tenant may hold.
pub const MAX_RUNBOOKS: usize = 256;
/// Steps one runbook may hold.
pub const MAX_STEPS: usize = 16;

/// One read-only tool call a runbook asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// An operation of the investigation connector (`get_bots`).
    pub tool: String,
    #[serde(default)]
    #[specta(type = specta_typescript::Unknown)]
    pub params: Value,
    /// What it is looked at for.
    pub why: String,
}

/// A runbook: when it applies and what to look at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Runbook {
    pub name: String,
    /// Alertmanager matchers over the alert's labels; all must hold.
    pub matchers: Vec<String>,
    #[serde(default)]
    pub instructions: String,
    pub steps: Vec<Step>,
}

/// Whether a toolset may be used now.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ToolsetStatus {
    Enabled,
    /// Turned off by the operator.
    Disabled,
    /// A prerequisite does not hold (its connector is not enabled, no
    /// grant, its credential is missing).
    Failed,
}

/// Tools that stand or fall together, with why they are as they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Toolset {
    pub name: String,
    pub tools: Vec<String>,
    pub status: ToolsetStatus,
    /// Why it is disabled or failed.
    pub why: Option<String>,
}

/// A task's progress.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum TaskStatus {
    Pending,
    InProgress,
    Done,
}

/// One task of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Task {
    /// `T-<n>`, from 1.
    pub id: String,
    pub tool: String,
    #[specta(type = specta_typescript::Unknown)]
    pub params: Value,
    pub why: String,
    /// The runbook it came from.
    pub runbook: String,
    pub status: TaskStatus,
    /// The evidence it produced, once done.
    pub evidence: Option<String>,
}

/// A step not taken, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Skipped {
    pub tool: String,
    pub runbook: String,
    pub why: String,
}

/// The explicit plan of an investigation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Plan {
    /// The runbooks that matched, in the order given.
    pub runbooks: Vec<String>,
    pub tasks: Vec<Task>,
    pub skipped: Vec<Skipped>,
}

/// Runbooks checked: every refusal at its JSON path.
pub fn check(runbooks: &[Runbook]) -> Result<(), Invalid> {
    let bad = |path: String, reason: String| Invalid {
        path,
        reason,
        limit: None,
    };
    if runbooks.len() > MAX_RUNBOOKS {
        return Err(Invalid {
            path: "runbooks".into(),
            reason: format!("holds {}; the limit is {MAX_RUNBOOKS}", runbooks.len()),
            limit: Some(MAX_RUNBOOKS as u64),
        });
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in runbooks.iter().enumerate() {
        if r.name.is_empty() || r.name.len() > 64 || !seen.insert(r.name.as_str()) {
            return Err(bad(
                format!("runbooks[{i}].name"),
                "must be 1 to 64 bytes and unique".into(),
            ));
        }
        if r.matchers.is_empty() {
            return Err(bad(
                format!("runbooks[{i}].matchers"),
                "a runbook needs at least one matcher (`alertname=\"…\"`)".into(),
            ));
        }
        matchers(&format!("runbooks[{i}].matchers"), &r.matchers)?;
        if r.steps.is_empty() || r.steps.len() > MAX_STEPS {
            return Err(Invalid {
                path: format!("runbooks[{i}].steps"),
                reason: format!("must hold 1 to {MAX_STEPS} steps"),
                limit: Some(MAX_STEPS as u64),
            });
        }
        for (j, s) in r.steps.iter().enumerate() {
            let ok = !s.tool.is_empty()
                && s.tool.len() <= 64
                && s.tool
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(bad(
                    format!("runbooks[{i}].steps[{j}].tool"),
                    "must be 1 to 64 of [a-z0-9_]".into(),
                ));
            }
            if !(s.params.is_null() || s.params.is_object()) {
                return Err(bad(
                    format!("runbooks[{i}].steps[{j}].params"),
                    "must be an object".into(),
                ));
            }
        }
    }
    Ok(())
}

/// The runbooks whose matchers all hold of `labels`, in order (a
/// runbook whose matchers do not parse matches nothing).
pub fn matching<'a>(runbooks: &'a [Runbook], labels: &Labels) -> Vec<&'a Runbook> {
    runbooks
        .iter()
        .filter(|r| matchers("", &r.matchers).is_ok_and(|ms| all_match(&ms, labels)))
        .collect()
}

/// The plan for an alert with `labels`: the steps of every matching
/// runbook whose tool an enabled toolset offers, once each (the same tool
/// with the same parameters is one task), the others kept aside with why.
pub fn plan(runbooks: &[Runbook], toolsets: &[Toolset], labels: &Labels) -> Plan {
    let mut out = Plan {
        runbooks: Vec::new(),
        tasks: Vec::new(),
        skipped: Vec::new(),
    };
    for r in matching(runbooks, labels) {
        out.runbooks.push(r.name.clone());
        for s in &r.steps {
            let params = if s.params.is_null() {
                Value::Object(serde_json::Map::new())
            } else {
                s.params.clone()
            };
            let set = toolsets.iter().find(|t| t.tools.contains(&s.tool));
            let why_not = match set {
                None => Some(format!("no toolset offers {}", s.tool)),
                Some(t) if t.status != ToolsetStatus::Enabled => Some(format!(
                    "toolset {} is {}: {}",
                    t.name,
                    <&str>::from(t.status),
                    t.why.as_deref().unwrap_or("no reason given")
                )),
                Some(_) => None,
            };
            if let Some(why) = why_not {
                out.skipped.push(Skipped {
                    tool: s.tool.clone(),
                    runbook: r.name.clone(),
                    why,
                });
                continue;
            }
            if out
                .tasks
                .iter()
                .any(|t| t.tool == s.tool && t.params == params)
            {
                continue;
            }
            out.tasks.push(Task {
                id: format!("T-{}", out.tasks.len() + 1),
                tool: s.tool.clone(),
                params,
                why: s.why.clone(),
                runbook: r.name.clone(),
                status: TaskStatus::Pending,
                evidence: None,
            });
        }
    }
    out
}

/// Why a task could not move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {id} is {from:?}; it cannot {to:?}")]
pub struct Misstep {
    pub id: String,
    pub from: TaskStatus,
    pub to: TaskStatus,
}

impl Plan {
    /// Starts a pending task.
    pub fn start(&mut self, id: &str) -> Result<&Task, Misstep> {
        self.moved(id, TaskStatus::Pending, TaskStatus::InProgress, None)
    }

    /// Finishes a task in progress with the evidence it produced.
    pub fn finish(&mut self, id: &str, evidence: &str) -> Result<&Task, Misstep> {
        self.moved(
            id,
            TaskStatus::InProgress,
            TaskStatus::Done,
            Some(evidence.to_owned()),
        )
    }

    fn moved(
        &mut self,
        id: &str,
        from: TaskStatus,
        to: TaskStatus,
        evidence: Option<String>,
    ) -> Result<&Task, Misstep> {
        let miss = |from| Misstep {
            id: id.to_owned(),
            from,
            to,
        };
        let t = self
            .tasks
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| miss(from))?;
        if t.status != from {
            return Err(miss(t.status));
        }
        t.status = to;
        if evidence.is_some() {
            t.evidence = evidence;
        }
        Ok(t)
    }

    /// The next pending task, if any.
    pub fn next(&self) -> Option<&Task> {
        self.tasks.iter().find(|t| t.status == TaskStatus::Pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn book() -> Vec<Runbook> {
        serde_json::from_value(json!([
            {"name": "node-lost", "matchers": ["alertname=\"OshalNodeLost\""],
             "steps": [
                {"tool": "get_bots", "why": "which bots of the node are gone"},
                {"tool": "list_tickets", "params": {"state": "queued"}, "why": "what waits"},
                {"tool": "get_health", "why": "is the store up"}
             ]},
            {"name": "any-oshal", "matchers": ["alertname=~\"Oshal.*\""],
             "steps": [
                {"tool": "get_health", "why": "is the store up"},
                {"tool": "list_findings", "why": "what the Security Center found"}
             ]},
            {"name": "lag", "matchers": ["alertname=\"OshalLaneLag\""],
             "steps": [{"tool": "get_bots", "why": "the lane's figures"}]}
        ]))
        .unwrap()
    }

    fn toolsets(security: ToolsetStatus) -> Vec<Toolset> {
        vec![
            Toolset {
                name: "platform".into(),
                tools: vec![
                    "get_bots".into(),
                    "list_tickets".into(),
                    "get_health".into(),
                ],
                status: ToolsetStatus::Enabled,
                why: None,
            },
            Toolset {
                name: "security".into(),
                tools: vec!["list_findings".into()],
                status: security,
                why: Some("the Security Center is off".into()),
            },
        ]
    }

    fn labels(name: &str) -> Labels {
        [("alertname".to_owned(), name.to_owned())].into()
    }

    #[test]
    fn matching_runbooks_make_one_plan_without_repeats() {
        assert!(check(&book()).is_ok());
        let p = plan(
            &book(),
            &toolsets(ToolsetStatus::Enabled),
            &labels("OshalNodeLost"),
        );
        assert_eq!(p.runbooks, ["node-lost", "any-oshal"]);
        let tools: Vec<&str> = p.tasks.iter().map(|t| t.tool.as_str()).collect();
        assert_eq!(
            tools,
            ["get_bots", "list_tickets", "get_health", "list_findings"]
        );
        assert_eq!(p.tasks[1].params, json!({"state": "queued"}));
        assert!(p.tasks.iter().all(|t| t.status == TaskStatus::Pending));
        assert_eq!(p.tasks[3].id, "T-4");
    }

    #[test]
    fn a_step_whose_toolset_cannot_run_is_kept_aside_with_why() {
        let p = plan(
            &book(),
            &toolsets(ToolsetStatus::Failed),
            &labels("OshalLaneLag"),
        );
        assert_eq!(p.runbooks, ["any-oshal", "lag"]);
        assert_eq!(p.skipped.len(), 1);
        assert_eq!(p.skipped[0].tool, "list_findings");
        assert!(
            p.skipped[0]
                .why
                .contains("failed: the Security Center is off")
        );
        let p = plan(&book(), &[], &labels("OshalLaneLag"));
        assert!(p.tasks.is_empty());
        assert!(
            p.skipped
                .iter()
                .all(|s| s.why.starts_with("no toolset offers"))
        );
        let p = plan(
            &book(),
            &toolsets(ToolsetStatus::Enabled),
            &labels("DiskFull"),
        );
        assert!(p.runbooks.is_empty() && p.tasks.is_empty());
    }

    #[test]
    fn a_task_moves_pending_in_progress_done_with_its_evidence() {
        let mut p = plan(
            &book(),
            &toolsets(ToolsetStatus::Enabled),
            &labels("OshalLaneLag"),
        );
        let first = p.next().unwrap().id.clone();
        assert!(p.finish(&first, "E-1").is_err(), "not started");
        p.start(&first).unwrap();
        assert!(p.start(&first).is_err(), "started once");
        let t = p.finish(&first, "E-1").unwrap();
        assert_eq!(
            (t.status, t.evidence.as_deref()),
            (TaskStatus::Done, Some("E-1"))
        );
        assert_ne!(p.next().unwrap().id, first);
        assert!(p.start("T-99").is_err());
    }

    #[test]
    fn bad_runbooks_are_refused_at_their_path() {
        let mut b = book();
        b[1].matchers = vec![];
        assert_eq!(check(&b).unwrap_err().path, "runbooks[1].matchers");
        let mut b = book();
        b[0].steps[2].tool = "Get-Health".into();
        assert_eq!(check(&b).unwrap_err().path, "runbooks[0].steps[2].tool");
        let mut b = book();
        b[2].name = "node-lost".into();
        assert_eq!(check(&b).unwrap_err().path, "runbooks[2].name");
        let mut b = book();
        b[0].matchers = vec!["alertname=~\"(\"".into()];
        assert_eq!(check(&b).unwrap_err().path, "runbooks[0].matchers[0]");
        let mut b = book();
        b[0].steps[0].params = json!([1]);
        assert_eq!(check(&b).unwrap_err().path, "runbooks[0].steps[0].params");
    }
}
