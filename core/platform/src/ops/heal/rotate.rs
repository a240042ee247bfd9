//! The rotation heal: a secret the Security Center found that is a
//! connector's stored OAuth2 refresh token is rotated by the broker.
//!
//! The plan reads the finding's file again and asks the broker whose
//! credential each match of the finding's rule is (the broker compares
//! digests; no value leaves it). It holds only when every match is the
//! same connector's refresh token: a static key or a client secret is
//! changed at its provider, and a place that also holds other secrets
//! would stay exposed after the rotation. Its dry run names the
//! connector, the place and the bots holding grants on it (their calls
//! go on under the new token).
//!
//! The write rotates through the broker (refresh, store, revoke, probe:
//! `oshal_connector::broker::rotate`), then suppresses the finding with
//! what was done: the text stays where it was found, dead, for a person
//! to remove. A retry after a lost answer answers as before.

use oshal_ops::change::{ChangeEvent, ChangeKind};
use oshal_ops::heal::{Action, BlastRadius, DryRun};
use oshal_ops::rule::HealRule;
use serde_json::{Value, json};

use super::super::{Inner, Operations, OpsError};
use super::plan::Planned;
use crate::connector::broker::Secret;
use crate::connector::call::CallRef;
use crate::security::{Finding, FindingQuery, FindingState, SuppressRequest};

/// How long a rotated finding stays suppressed: long enough for a person
/// to remove the dead text; a scan after that finds it again if it stays.
const SUPPRESS_DAYS: u32 = 30;

/// The open secret finding whose object (or id) is `subject`.
async fn finding(inner: &Inner, subject: &str) -> Result<Finding, String> {
    let Some(center) = inner.security.get() else {
        return Err("no Security Center runs with this platform".into());
    };
    let query = FindingQuery {
        state: Some(FindingState::Open),
        source: None,
        limit: Some(crate::security::store::MAX_LIST),
    };
    center
        .findings(&query)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|f| {
            (f.object == subject || f.id == subject) && f.rule == oshal_ops::gather::SECRET_RULE
        })
        .ok_or_else(|| format!("no open secret finding on {subject}"))
}

/// Whose credential the finding holds: the connector, when every match of
/// its rule in its file is that connector's refresh token (now or one it
/// replaced), with the values matched (for the broker alone).
async fn exposed(inner: &Inner, finding: &Finding) -> Result<(String, Vec<Secret>), String> {
    let Some(connectors) = inner.controller.connectors() else {
        return Err("this platform runs without a connector runtime".into());
    };
    let Some(path) = finding.location.as_ref().map(|l| l.uri.clone()) else {
        return Err(format!(
            "{} is stored text, not a file: the rotation heal reads files again; rotate this one by hand",
            finding.object
        ));
    };
    // The object ends with the secret rule's id: "file /x (rule-id)".
    let rule_id = finding
        .object
        .rsplit_once(" (")
        .and_then(|(_, r)| r.strip_suffix(')'))
        .unwrap_or_default();
    let text = read_bounded(&path).await?;
    let rules = inner.controller.secret_rules();
    let mut found = Vec::new();
    let mut values = Vec::new();
    for (hit, value) in rules.matches(&text) {
        if rules.rules()[hit.rule].id == rule_id {
            let whose = connectors
                .credential_owner(value)
                .await
                .map_err(|e| format!("the connector broker: {e}"))?;
            found.push((hit.line, whose));
            values.push(Secret::new(value));
        }
    }
    Ok((one_owner(&path, rule_id, &found)?, values))
}

/// The connector whose refresh token every match (its line, and whose
/// stored credential it is) is, or why the rotation heal does not hold.
fn one_owner(
    path: &str,
    rule_id: &str,
    found: &[(u32, Option<(String, &'static str)>)],
) -> Result<String, String> {
    let mut owner: Option<&str> = None;
    for (line, whose) in found {
        match (whose, owner) {
            (None, _) => {
                return Err(format!(
                    "{path} line {line}: a secret that is no connector's stored credential now (one rotated since is dead already; any other would stay exposed): remove it, and rotate it by hand if it is live"
                ));
            }
            (Some((_, field)), _)
                if *field != "refresh_token" && *field != "replaced_refresh_token" =>
            {
                return Err(format!(
                    "{path} line {line}: a stored {field}, which only its provider can change: make a new one there and store it"
                ));
            }
            (Some((c, _)), Some(o)) if c != o => {
                return Err(format!(
                    "{path}: holds the credentials of {o} and {c}; one rotation heals one connector"
                ));
            }
            (Some((c, _)), _) => owner = Some(c),
        }
    }
    owner.map(str::to_owned).ok_or_else(|| {
        format!(
            "{path}: {} matches of {rule_id:?} now; the secret is no longer there",
            found.len()
        )
    })
}

async fn read_bounded(path: &str) -> Result<String, String> {
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    if meta.len() > crate::security::secrets::MAX_FILE_BYTES {
        return Err(format!(
            "{path}: {} bytes, over the {} a scan reads",
            meta.len(),
            crate::security::secrets::MAX_FILE_BYTES
        ));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl Operations {
    /// The rotation of the credential the finding on `planned.subject`
    /// holds, and its dry run.
    pub(super) async fn plan_rotate(
        &self,
        rule: &HealRule,
        planned: &Planned,
    ) -> Result<(Action, DryRun), OpsError> {
        let refused = |why: String| OpsError::Conflict(format!("heal rule {}: {why}", rule.name));
        let finding = finding(&self.inner, &planned.subject)
            .await
            .map_err(refused)?;
        let (connector, _) = exposed(&self.inner, &finding).await.map_err(refused)?;
        let Some(connectors) = self.inner.controller.connectors() else {
            return Err(refused(
                "this platform runs without a connector runtime".into(),
            ));
        };
        let revocation = match connectors
            .registry()
            .get(&connector)
            .map(|m| m.auth.clone())
        {
            Some(crate::connector::manifest::AuthKind::Oauth2RefreshToken {
                revocation_url: Some(url),
                ..
            }) => format!("revoke the old one at {url}"),
            Some(crate::connector::manifest::AuthKind::Oauth2RefreshToken { .. }) => {
                "end the old one by the rotation (the manifest names no revocation_url)".into()
            }
            _ => {
                return Err(refused(format!(
                    "{connector} is not an OAuth2 refresh-token connector"
                )));
            }
        };
        let mut bots: Vec<String> = connectors
            .grants(None)
            .await
            .map_err(super::super::conn)?
            .into_iter()
            .filter(|g| g.connector == connector)
            .filter_map(|g| g.bot.map(|b| b.to_string()))
            .collect();
        bots.sort();
        bots.dedup();
        let dry_run = DryRun {
            summary: format!(
                "rotate {connector}'s refresh token, found in {}: refresh now and store the new one, {revocation}, and prove the old one refused; then suppress finding {} for {SUPPRESS_DAYS} days (the dead text stays for a person to remove). Calls through its grants ({} bots) go on under the new token",
                finding.object,
                finding.id,
                bots.len()
            ),
            before: json!({"connector": connector, "finding": finding.id, "state": "open"}),
            after: json!({"connector": connector, "finding": finding.id, "state": "suppressed", "old_token": "refused"}),
            blast: BlastRadius {
                tenants: Vec::new(),
                bots,
                tickets: Vec::new(),
                tickets_total: 0,
            },
        };
        Ok((
            Action::RotateCredential {
                connector,
                finding: finding.id,
            },
            dry_run,
        ))
    }
}

/// What a heal's write did, or its refusal as an answer (`writes.rs`).
type Written = Result<Result<(Value, Option<ChangeEvent>), (u16, Value)>, String>;

/// Rotates `connector`'s refresh token and suppresses `finding`; one
/// rotated by this write before answers as before.
pub(in crate::ops) async fn write(
    inner: &Inner,
    connector: &str,
    finding_id: &str,
    call: &CallRef,
    key: &str,
    written_before: bool,
) -> Written {
    let answer = |revoked: Option<bool>, probe: Option<&str>| json!({"connector": connector, "finding": finding_id, "rotated": true, "revoked": revoked, "probe": probe});
    if written_before {
        return Ok(Ok((answer(None, None), None)));
    }
    let Some(connectors) = inner.controller.connectors() else {
        return Err("this platform runs without a connector runtime".into());
    };
    let Some(center) = inner.security.get() else {
        return Err("no Security Center runs with this platform".into());
    };
    // What the finding's file holds now, checked again: only this
    // connector's refresh tokens are sent to its provider. A finding no
    // longer open leaves only the stored token to end.
    let values = match finding(inner, finding_id).await {
        Err(_) => Vec::new(),
        Ok(f) => match exposed(inner, &f).await {
            Ok((c, values)) if c == connector => values,
            Ok((c, _)) => {
                return Ok(Err((
                    409,
                    json!({"error": format!("finding {finding_id} now holds {c}'s credential, not {connector}'s")}),
                )));
            }
            Err(why) => return Ok(Err((409, json!({"error": why})))),
        },
    };
    let rotation = match connectors.rotate_credential(call, connector, &values).await {
        None => {
            return Ok(Err((
                404,
                json!({"error": format!("no connector {connector:?}")}),
            )));
        }
        Some(Err(crate::connector::broker::BrokerError::NotRotated(why))) => {
            return Ok(Err((409, json!({"error": why}))));
        }
        Some(Err(e)) => return Err(e.to_string()),
        Some(Ok(r)) => r,
    };
    let done = format!(
        "{connector}'s refresh token rotated by heal ticket {} (write {key}): the old one {} and refused ({})",
        call.ticket,
        if rotation.revoked {
            "revoked at the provider"
        } else {
            "ended by the rotation"
        },
        rotation.probe
    );
    let request = SuppressRequest {
        reason: format!("{done}; remove the dead text"),
        days: SUPPRESS_DAYS,
    };
    if let Err(e) = center.suppress(finding_id, &request, "ops-loop heal").await {
        // Rotated all the same; the finding stays open for a person.
        tracing::warn!(finding = finding_id, error = %e, "a rotated credential's finding could not be suppressed");
    }
    let change = ChangeEvent {
        kind: ChangeKind::CredentialRotated,
        subject: connector.to_owned(),
        detail: done,
        count: 1,
        at_ms: 0,
    };
    Ok(Ok((
        answer(Some(rotation.revoked), Some(&rotation.probe)),
        Some(change),
    )))
}

#[cfg(test)]
mod tests {
    use super::one_owner;

    fn of(c: &str, field: &'static str) -> Option<(String, &'static str)> {
        Some((c.to_owned(), field))
    }

    #[test]
    fn only_a_place_whose_every_match_is_one_connectors_refresh_token_is_rotated() {
        let rule = "assigned-credential";
        assert_eq!(
            one_owner(
                "/d/a.log",
                rule,
                &[
                    (3, of("shop", "refresh_token")),
                    (9, of("shop", "refresh_token"))
                ]
            ),
            Ok("shop".to_owned())
        );
        assert_eq!(
            one_owner(
                "/d/a.log",
                rule,
                &[(3, of("shop", "replaced_refresh_token"))]
            ),
            Ok("shop".to_owned()),
            "a token replaced since may still work at a provider with a grace period"
        );
        let why = one_owner(
            "/d/a.log",
            rule,
            &[(3, of("shop", "refresh_token")), (7, None)],
        )
        .unwrap_err();
        assert!(
            why.starts_with("/d/a.log line 7: a secret that is no connector's stored credential"),
            "{why}"
        );
        let why = one_owner("/d/a.log", rule, &[(2, of("shop", "client_secret"))]).unwrap_err();
        assert!(
            why.contains("line 2: a stored client_secret, which only its provider can change"),
            "{why}"
        );
        let why = one_owner("/d/a.log", rule, &[(1, of("shop", "api_key"))]).unwrap_err();
        assert!(why.contains("a stored api_key"), "{why}");
        let why = one_owner(
            "/d/a.log",
            rule,
            &[
                (1, of("shop", "refresh_token")),
                (2, of("crm", "refresh_token")),
            ],
        )
        .unwrap_err();
        assert!(
            why.contains("holds the credentials of shop and crm"),
            "{why}"
        );
        let why = one_owner("/d/a.log", rule, &[]).unwrap_err();
        assert!(
            why.contains("0 matches of \"assigned-credential\" now"),
            "{why}"
        );
    }
}
