//! The rotation heal: a secret the Security Center found that is a
//! connector's stored OAuth2 refresh token is rotated by the broker.
//!
//! The plan takes the finding the incident's alert names (the platform's
//! own, open, and the diagnosis's top cause), reads its file again (a
//! regular file, as a scan reads it) and asks the broker whose credential
//! each match of the finding's rule is (the broker compares digests; a
//! stored credential never leaves it). It holds only when every match is
//! one connector's refresh token, now or one it replaced: a static key or
//! a client secret is changed at its provider, and a match that is none
//! would stay exposed after the rotation. Its dry run names the
//! connector, the place and the bots holding grants on it (their calls go
//! on under the new token).
//!
//! The write checks the file again (only this connector's tokens are
//! handed to the broker, which sends nothing else to the provider),
//! rotates through the broker (`oshal_connector::broker::rotate`), then
//! suppresses the finding, if it is still open, with what was done: the
//! text stays where it was found, dead, for a person to remove. A retry
//! after a lost answer answers as before.

use oshal_ops::change::{ChangeEvent, ChangeKind};
use oshal_ops::heal::{Action, BlastRadius, DryRun};
use oshal_ops::rule::HealRule;
use serde_json::json;

use super::super::writes::Written;
use super::super::{Inner, Operations, OpsError};
use super::plan::Planned;
use crate::connector::broker::Secret;
use crate::connector::call::CallRef;
use crate::security::{Finding, FindingState, SecurityError, SuppressRequest};

/// How long a rotated finding stays suppressed: long enough for a person
/// to remove the dead text; a scan after that finds it again if it stays.
const SUPPRESS_DAYS: u32 = 30;

/// The platform's own secret finding `id`, if it is still open (`None`:
/// gone, resolved or suppressed since).
async fn open_finding(inner: &Inner, id: &str) -> Result<Option<Finding>, String> {
    let Some(center) = inner.security.get() else {
        return Err("no Security Center runs with this platform".into());
    };
    match center.finding(id).await {
        Ok(f) => Ok((f.state == FindingState::Open
            && f.source == "oshal"
            && f.rule == oshal_ops::gather::SECRET_RULE)
            .then_some(f)),
        Err(SecurityError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
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
    let text = crate::security::secrets::read_text(std::path::Path::new(&path))
        .map_err(|e| format!("{path}: {e}"))?;
    let rules = inner.controller.secret_rules();
    let matched: Vec<_> = rules
        .matches(&text)
        .into_iter()
        .filter(|(hit, _)| rules.rules()[hit.rule].id == rule_id)
        .collect();
    let mut distinct: Vec<&str> = matched.iter().map(|(_, v)| *v).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let whose = connectors
        .credential_owners(&distinct)
        .await
        .map_err(|e| format!("the connector broker: {e}"))?;
    let found: Vec<_> = matched
        .iter()
        .map(|(hit, v)| {
            let i = distinct.binary_search(v).unwrap_or_default();
            (hit.line, whose[i].clone())
        })
        .collect();
    let values = distinct.into_iter().map(Secret::new).collect();
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
                    "{path} line {line}: a secret that is no connector's stored credential (it would stay exposed): remove it, and rotate it by hand if it is live"
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

impl Operations {
    /// The rotation of the credential the incident's finding holds, and
    /// its dry run.
    pub(super) async fn plan_rotate(
        &self,
        rule: &HealRule,
        planned: &Planned,
    ) -> Result<(Action, DryRun), OpsError> {
        let refused = |why: String| OpsError::Conflict(format!("heal rule {}: {why}", rule.name));
        let Some(id) = planned.finding.as_deref() else {
            return Err(refused("the incident's alert names no finding".into()));
        };
        let finding = open_finding(&self.inner, id)
            .await
            .map_err(refused)?
            .ok_or_else(|| {
                refused(format!(
                    "finding {id} is not an open secret finding of the platform's"
                ))
            })?;
        if finding.object != planned.subject {
            return Err(refused(format!(
                "the diagnosis's top cause is {}, not the alert's finding {id} ({})",
                planned.subject, finding.object
            )));
        }
        let (connector, _) = exposed(&self.inner, &finding).await.map_err(refused)?;
        let Some(connectors) = self.inner.controller.connectors() else {
            return Err(refused(
                "this platform runs without a connector runtime".into(),
            ));
        };
        let revocation = match connectors.registry().get(&connector).map(|m| m.auth.clone()) {
            Some(crate::connector::manifest::AuthKind::Oauth2RefreshToken {
                revocation_url: Some(url),
                ..
            }) => format!("revoke the old and exposed ones at {url}"),
            Some(crate::connector::manifest::AuthKind::Oauth2RefreshToken { .. }) => {
                "end the old one by the rotation alone (the manifest names no revocation_url: a provider that still takes it fails the heal)".into()
            }
            _ => return Err(refused(format!("{connector} is not an OAuth2 refresh-token connector"))),
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
                "rotate {connector}'s refresh token, found in {}: refresh now and store the new one, {revocation}, prove each refused and the new one working; then suppress finding {} for {SUPPRESS_DAYS} days (the dead text stays for a person to remove). Calls through its grants ({} bots) go on under the new token",
                finding.object,
                finding.id,
                bots.len()
            ),
            before: json!({"connector": connector, "finding": finding.id, "state": "open"}),
            after: json!({"connector": connector, "finding": finding.id, "state": "suppressed", "old_token": "refused"}),
            blast: BlastRadius::bots(bots),
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

/// Rotates `connector`'s refresh token and suppresses `finding_id` if it
/// is still open; one rotated by this write before answers as before.
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
    // connector's refresh tokens are handed to the broker. A finding no
    // longer open leaves only the stored token to end.
    let open = open_finding(inner, finding_id).await?;
    let values = match &open {
        None => Vec::new(),
        Some(f) => match exposed(inner, f).await {
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
        "{connector}'s refresh token rotated by heal ticket {} (write {key}): {} ended {} and refused ({})",
        call.ticket,
        rotation.ended,
        if rotation.revoked {
            "by revocation at the provider"
        } else {
            "by the rotation"
        },
        rotation.probe
    );
    if open.is_some() {
        let request = SuppressRequest {
            reason: format!("{done}; remove the dead text"),
            days: SUPPRESS_DAYS,
        };
        if let Err(e) = center.suppress(finding_id, &request, "ops-loop heal").await {
            // Rotated all the same; the finding stays open for a person,
            // and the re-check says the heal did not hold.
            tracing::warn!(finding = finding_id, error = %e, "a rotated credential's finding could not be suppressed");
        }
    }
    let change = ChangeEvent {
        kind: ChangeKind::CredentialRotated,
        subject: connector.to_owned(),
        detail: done,
        count: rotation.ended,
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
