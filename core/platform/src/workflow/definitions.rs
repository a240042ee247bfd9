//! Published workflow definitions: each tenant's named specs, versioned.
//!
//! Publishing is the explicit act that makes a spec a version (a person's
//! or a token's, never the generator's): the spec is checked like any,
//! and written to the journal (book `wfdef`, one session per tenant and
//! name, one entry per version) before it is answered. A spec whose hash
//! is the latest version's publishes nothing new. Each version carries its
//! diff against the one before ([`oshal_workflow::diff`]), and a candidate
//! can be compared with the latest before it is published. A run started
//! from a definition is pinned to that version's hash like any other.

use std::collections::BTreeMap;
use std::sync::RwLock;

use oshal_workflow::diff;
use oshal_workflow::spec::WorkflowSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use specta::Type;

use super::view::{self, NodeOutline, Validation};
use super::{WorkflowError, read_spec};
use crate::clock::UnixMs;
use crate::store::{JournalEntry, Store};
use crate::ticket::TenantId;

/// The journal's book of published definitions.
pub const BOOK: &str = "wfdef";
/// The most versions one definition keeps.
pub const MAX_VERSIONS: u32 = 10_000;
/// The longest publishing note.
pub const MAX_NOTE: usize = 1000;

/// A spec to publish as the next version of its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDefinition {
    /// A `WorkflowSpec` object, or its JSON or YAML text.
    #[specta(type = specta_typescript::Unknown)]
    #[schema(schema_with = view::spec_schema)]
    pub spec: Value,
    /// Why this version; at most 1,000 bytes.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub note: String,
    /// A known tenant; the token's tenant, or `default`, if absent.
    #[serde(default)]
    #[schema(value_type = Option<TenantId>)]
    pub tenant: Option<String>,
}

/// One change between two versions of a spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct SpecChange {
    /// `$.nodes[review].approval.timeout`, `$.inputs.codec.default`.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub op: String,
    #[specta(type = Option<specta_typescript::Unknown>)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub before: Option<Value>,
    #[specta(type = Option<specta_typescript::Unknown>)]
    #[schema(value_type = Option<serde_json::Value>)]
    pub after: Option<Value>,
}

/// Changes as the surfaces show them.
pub fn changes(before: &WorkflowSpec, after: &WorkflowSpec) -> Vec<SpecChange> {
    diff::diff(before, after)
        .into_iter()
        .map(|c| SpecChange {
            path: c.path,
            op: match c.op {
                diff::ChangeOp::Added => "added",
                diff::ChangeOp::Removed => "removed",
                diff::ChangeOp::Changed => "changed",
            }
            .to_owned(),
            before: c.before,
            after: c.after,
        })
        .collect()
}

/// One version of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct DefinitionView {
    pub name: String,
    pub tenant: TenantId,
    /// From 1.
    pub version: u32,
    /// What a run of it is pinned to: `sha256:…`.
    pub hash: String,
    pub published_by: String,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub published_at_ms: UnixMs,
    pub note: String,
    pub nodes: Vec<NodeOutline>,
    /// Against the version before (empty for the first).
    pub changes: Vec<SpecChange>,
    /// The spec, as JSON.
    #[specta(type = specta_typescript::Unknown)]
    #[schema(value_type = Object)]
    pub spec: Value,
    /// Whether this publish made it (false: the latest already had this hash).
    pub created: bool,
}

/// Whose definition: a tenant's (the token's own for a tenant token).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DefinitionQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<crate::ticket::TenantId>)]
    pub tenant: Option<String>,
}

/// A candidate compared with the latest version of its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct DefinitionDiff {
    pub validation: Validation,
    /// The latest version of the candidate's name; none if it has none.
    pub against: Option<u32>,
    pub changes: Vec<SpecChange>,
}

/// What the journal keeps of a version.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Published {
    name: String,
    version: u32,
    hash: String,
    spec: WorkflowSpec,
    by: String,
    note: String,
}

/// Each definition's versions, oldest first, with when each was published.
type ByName = BTreeMap<(TenantId, String), Vec<(Published, UnixMs)>>;

/// Every tenant's definitions, by (tenant, name).
#[derive(Debug, Default)]
pub(super) struct Definitions {
    by_name: RwLock<ByName>,
}

fn session(tenant: &TenantId, name: &str) -> String {
    format!("{tenant}/{name}")
}

impl Definitions {
    /// Reads every published version back from the journal.
    pub async fn load(store: &dyn Store) -> Result<Definitions, WorkflowError> {
        let mut by_name = ByName::new();
        for e in store.journal(BOOK, None).await? {
            match serde_json::from_str::<Published>(&e.body) {
                Ok(p) => by_name
                    .entry((e.tenant.clone(), p.name.clone()))
                    .or_default()
                    .push((p, e.at_ms)),
                Err(err) => {
                    tracing::error!(session = %e.session, seq = e.seq, error = %err, "a published workflow version could not be read")
                }
            }
        }
        for versions in by_name.values_mut() {
            versions.sort_by_key(|(p, _)| p.version);
        }
        Ok(Definitions {
            by_name: RwLock::new(by_name),
        })
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&BTreeMap<(TenantId, String), Vec<(Published, UnixMs)>>) -> T,
    ) -> T {
        f(&self.by_name.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Publishes `spec` as the next version of its name for `tenant`.
    pub async fn publish(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
        new: &NewDefinition,
        by: &str,
        now: UnixMs,
    ) -> Result<DefinitionView, WorkflowError> {
        check_note(new)?;
        let workflow = read_spec(&new.spec).map_err(WorkflowError::Spec)?;
        let name = workflow.spec.name.clone();
        let key = (tenant.clone(), name.clone());
        let latest = self.read(|m| m.get(&key).and_then(|v| v.last()).cloned());
        if let Some((p, at)) = &latest
            && p.hash == workflow.hash
        {
            return Ok(self.view(tenant, p, *at, latest_before(self, &key, p.version), false));
        }
        let version = latest.as_ref().map_or(1, |(p, _)| p.version + 1);
        if version > MAX_VERSIONS {
            return Err(WorkflowError::Conflict(format!(
                "{name} has {MAX_VERSIONS} versions, the most one definition keeps"
            )));
        }
        let published = Published {
            name: name.clone(),
            version,
            hash: workflow.hash.clone(),
            spec: workflow.spec.clone(),
            by: by.to_owned(),
            note: new.note.clone(),
        };
        let entry = JournalEntry {
            book: BOOK.into(),
            session: session(tenant, &name),
            seq: version - 1,
            tenant: tenant.clone(),
            kind: "published".into(),
            body: serde_json::to_string(&published).expect("a spec serializes"),
            at_ms: now,
        };
        // Two publishes at once: the journal's (session, seq) lets one win.
        if store.append_journal(std::slice::from_ref(&entry)).await? == 0 {
            return Err(WorkflowError::Conflict(format!(
                "version {version} of {name} was published meanwhile; compare with it and publish again"
            )));
        }
        let before = latest.map(|(p, _)| p);
        self.by_name
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .push((published.clone(), now));
        Ok(self.view(tenant, &published, now, before, true))
    }

    fn view(
        &self,
        tenant: &TenantId,
        p: &Published,
        at: UnixMs,
        before: Option<Published>,
        created: bool,
    ) -> DefinitionView {
        DefinitionView {
            name: p.name.clone(),
            tenant: tenant.clone(),
            version: p.version,
            hash: p.hash.clone(),
            published_by: p.by.clone(),
            published_at_ms: at,
            note: p.note.clone(),
            nodes: read_spec(&serde_json::to_value(&p.spec).unwrap_or(Value::Null))
                .map(|w| view::outline(&w))
                .unwrap_or_default(),
            changes: before
                .map(|b| changes(&b.spec, &p.spec))
                .unwrap_or_default(),
            spec: serde_json::to_value(&p.spec).unwrap_or(Value::Null),
            created,
        }
    }

    /// The latest version of each definition `only` may see.
    pub fn latest(&self, only: Option<&TenantId>) -> Vec<DefinitionView> {
        let latest: Vec<(TenantId, Published, UnixMs, Option<Published>)> = self.read(|m| {
            m.iter()
                .filter(|((t, _), _)| only.is_none_or(|o| o == t))
                .filter_map(|((t, _), v)| {
                    let (p, at) = v.last()?;
                    let before = v.len().checked_sub(2).map(|i| v[i].0.clone());
                    Some((t.clone(), p.clone(), *at, before))
                })
                .collect()
        });
        latest
            .into_iter()
            .map(|(t, p, at, before)| self.view(&t, &p, at, before, false))
            .collect()
    }

    /// Every version of `name`, newest first.
    pub fn versions(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<Vec<DefinitionView>, WorkflowError> {
        let all = self
            .read(|m| m.get(&(tenant.clone(), name.to_owned())).cloned())
            .ok_or_else(|| WorkflowError::NotFound(format!("definition {name}")))?;
        let mut out: Vec<DefinitionView> = all
            .iter()
            .enumerate()
            .map(|(i, (p, at))| {
                let before = i.checked_sub(1).map(|j| all[j].0.clone());
                self.view(tenant, p, *at, before, false)
            })
            .collect();
        out.reverse();
        Ok(out)
    }

    /// One version's spec (the latest if `version` is none).
    pub fn spec(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<u32>,
    ) -> Result<(WorkflowSpec, u32), WorkflowError> {
        self.read(|m| {
            let all = m.get(&(tenant.clone(), name.to_owned()))?;
            let p = match version {
                None => all.last().map(|(p, _)| p),
                Some(v) => all.iter().map(|(p, _)| p).find(|p| p.version == v),
            }?;
            Some((p.spec.clone(), p.version))
        })
        .ok_or_else(|| {
            WorkflowError::NotFound(match version {
                Some(v) => format!("version {v} of definition {name}"),
                None => format!("definition {name}"),
            })
        })
    }

    /// A candidate compared with the latest version of its name.
    pub fn compare(&self, tenant: &TenantId, spec: &Value) -> DefinitionDiff {
        let validation = super::validate(&super::SpecSource { spec: spec.clone() });
        let Ok(workflow) = read_spec(spec) else {
            return DefinitionDiff {
                validation,
                against: None,
                changes: Vec::new(),
            };
        };
        let key = (tenant.clone(), workflow.spec.name.clone());
        let latest = self.read(|m| m.get(&key).and_then(|v| v.last()).map(|(p, _)| p.clone()));
        DefinitionDiff {
            validation,
            against: latest.as_ref().map(|p| p.version),
            changes: latest
                .map(|p| changes(&p.spec, &workflow.spec))
                .unwrap_or_else(|| changes_from_nothing(&workflow.spec)),
        }
    }
}

/// A note over [`MAX_NOTE`] bytes is refused, in a publish or a compare.
pub(super) fn check_note(new: &NewDefinition) -> Result<(), WorkflowError> {
    if new.note.len() > MAX_NOTE {
        return Err(WorkflowError::Invalid {
            field: "note".into(),
            reason: format!("{} bytes; the limit is {MAX_NOTE}", new.note.len()),
        });
    }
    Ok(())
}

fn latest_before(defs: &Definitions, key: &(TenantId, String), version: u32) -> Option<Published> {
    defs.read(|m| {
        m.get(key)?
            .iter()
            .map(|(p, _)| p)
            .find(|p| p.version + 1 == version)
            .cloned()
    })
}

/// A first version's changes: every node added.
fn changes_from_nothing(spec: &WorkflowSpec) -> Vec<SpecChange> {
    spec.nodes
        .iter()
        .map(|n| SpecChange {
            path: format!("$.nodes[{}]", n.name),
            op: "added".into(),
            before: None,
            after: serde_json::to_value(n).ok(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::{NewRun, WorkflowError, Workflows};
    use super::*;
    use crate::controller::{Controller, LocalPool};

    const V1: &str = r#"
api_version: oshal.dev/workflow/v1
name: ship
nodes:
  - { name: build, timeouts: { start_to_close: 1m }, task: { kind: chat, payload: { prompt: build } } }
"#;

    async fn open(dir: &std::path::Path) -> (Controller, Workflows) {
        let (_, controller, workflows) =
            super::super::testkit::open(dir, LocalPool::builtin(1)).await;
        (controller, workflows)
    }

    fn new(spec: &str, note: &str) -> NewDefinition {
        NewDefinition {
            spec: json!(spec),
            note: note.into(),
            tenant: None,
        }
    }

    #[tokio::test]
    async fn versions_are_published_with_their_diff_kept_and_run_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (controller, workflows) = open(dir.path()).await;
        let v1 = workflows
            .publish(new(V1, "first"), "operator")
            .await
            .unwrap();
        assert_eq!((v1.version, v1.created, v1.changes.len()), (1, true, 0));
        let again = workflows
            .publish(new(V1, "same"), "operator")
            .await
            .unwrap();
        assert_eq!(
            (again.version, again.created),
            (1, false),
            "the same hash is no new version"
        );
        let v2_text = V1.replace("start_to_close: 1m", "start_to_close: 5m");
        let diff = workflows.compare(&new(&v2_text, "")).await.unwrap();
        assert_eq!(diff.against, Some(1));
        assert_eq!(
            diff.changes[0].path,
            "$.nodes[build].timeouts.start_to_close"
        );
        let v2 = workflows
            .publish(new(&v2_text, "slower builds"), "operator")
            .await
            .unwrap();
        assert_eq!((v2.version, v2.changes.len()), (2, 1));
        assert_ne!(v1.hash, v2.hash);

        // A run of an older version is pinned to that version's hash.
        let run = workflows
            .start_run(
                NewRun {
                    spec: Value::Null,
                    inputs: Default::default(),
                    tenant: None,
                    definition: Some("ship".into()),
                    version: Some(1),
                    dry_run: false,
                },
                "operator",
            )
            .await
            .unwrap();
        assert_eq!(run.summary.spec_hash, v1.hash);
        let missing = workflows
            .start_run(
                NewRun {
                    spec: Value::Null,
                    inputs: Default::default(),
                    tenant: None,
                    definition: Some("ship".into()),
                    version: Some(9),
                    dry_run: false,
                },
                "operator",
            )
            .await
            .unwrap_err();
        assert!(matches!(missing, WorkflowError::NotFound(_)), "{missing}");

        // Bad input is refused by field, and nothing is published.
        let bad = workflows
            .publish(
                new(&V1.replace("kind: chat", "kind: teleport"), ""),
                "operator",
            )
            .await
            .unwrap_err();
        let WorkflowError::Spec(issues) = bad else {
            panic!("{bad}")
        };
        assert_eq!(issues[0].path, "$.nodes[0].task.kind");
        let long = workflows
            .publish(new(V1, &"x".repeat(MAX_NOTE + 1)), "operator")
            .await;
        assert!(matches!(long, Err(WorkflowError::Invalid { ref field, .. }) if field == "note"));
        assert!(
            workflows
                .definitions(Some(&TenantId::parse("other").unwrap()))
                .is_empty()
        );
        workflows.shutdown();
        controller.shutdown().await;

        // Read back from the journal after a restart.
        let (controller, workflows) = open(dir.path()).await;
        let versions = workflows.definition("ship", None).await.unwrap();
        let got: Vec<(u32, &str)> = versions
            .iter()
            .map(|v| (v.version, v.note.as_str()))
            .collect();
        assert_eq!(got, [(2, "slower builds"), (1, "first")]);
        assert_eq!(versions[0].changes.len(), 1);
        assert_eq!(workflows.definitions(None).len(), 1);
        workflows.shutdown();
        controller.shutdown().await;
    }
}
