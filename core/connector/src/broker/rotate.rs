//! A connector credential found exposed: whose it is, and its rotation.
//!
//! [`Broker::owners`] tells which stored credential a found value is (the
//! connector and the field), comparing SHA-256 digests inside the broker:
//! the stored values never leave it. A refresh token the provider replaced
//! is still told apart (`replaced_refresh_token`): its digest is kept with
//! the credential (the last [`REPLACED_KEPT`]), since a provider with a
//! reuse grace period still takes it. A value two connectors hold is
//! refused: rotating one would end the other's.
//!
//! [`Broker::rotate`] replaces an OAuth2 refresh token and proves the old
//! one and the exposed ones dead, under the access-token lock (so no call
//! refreshes with the old token meanwhile):
//! 1. refresh now; the provider must answer with a new refresh token (one
//!    that does not rotate them cannot be rotated from here);
//! 2. store the new one (tried three times; a token issued and not stored
//!    is audited as such) and drop the cached access token;
//! 3. revoke the old one and each exposed one at the manifest's RFC 7009
//!    `revocation_url`, if it names one (judged by the status alone);
//! 4. probe: each of them, offered again, must be refused with
//!    `invalid_grant` (a 429 or a 5xx proves nothing);
//! 5. the new token must still work: some providers end a whole grant
//!    with one revoked token, or take a rotated token's reuse as theft.
//!    Its answer is kept (the newest token stored, its access cached).
//!
//! A failed step fails the rotation with what is known, and what the
//! provider said is named only by its RFC 6749 error code. Only values
//! the broker holds as this connector's refresh tokens (now or replaced)
//! are ever sent: an exposed value that is not is refused before anything
//! is sent. Static keys (`api_key`, `bearer`) and client secrets are
//! changed at the provider; they are refused, naming why.

use sha2::{Digest, Sha256};

use super::{Broker, BrokerError, Secret, field, secret_path};
use crate::call::CallRef;
use crate::manifest::{AuthKind, Manifest};
use crate::store::{AuditEntry, AuditKind};

/// The credential fields a stored credential may hold, in the order they
/// are compared.
const FIELDS: [&str; 4] = ["refresh_token", "client_secret", "api_key", "token"];
/// How many replaced refresh tokens' digests a credential keeps.
pub const REPLACED_KEPT: usize = 8;
/// Tries of storing a newly issued refresh token.
const STORE_TRIES: u32 = 3;

/// What a rotation did; never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub connector: String,
    /// How many tokens it ended: the old one and each exposed one.
    pub ended: u32,
    /// Whether they were revoked at the provider's revocation endpoint
    /// (false: the manifest names none, and the rotation alone ended them).
    pub revoked: bool,
    /// The token endpoint's answer to the last of them, offered again
    /// (`400 Bad Request: invalid_grant`).
    pub probe: String,
}

fn digest(value: &str) -> String {
    crate::text::hex(&Sha256::digest(value.as_bytes()))
}

/// `stored` with `new` as its refresh token, the one it replaces kept as
/// a digest (the newest [`REPLACED_KEPT`]).
pub(super) fn replaced(stored: &serde_json::Value, new: &str) -> serde_json::Value {
    let mut next = stored.clone();
    let mut kept: Vec<serde_json::Value> = stored
        .get("replaced")
        .and_then(|r| r.as_array())
        .cloned()
        .unwrap_or_default();
    if let Some(old) = stored.get("refresh_token").and_then(|t| t.as_str()) {
        kept.insert(0, serde_json::Value::String(digest(old)));
    }
    kept.truncate(REPLACED_KEPT);
    next["refresh_token"] = serde_json::Value::String(new.to_owned());
    next["replaced"] = serde_json::Value::Array(kept);
    next
}

/// Whether `stored` holds `value` as its refresh token, now or replaced.
fn holds_refresh(stored: &serde_json::Value, value: &str) -> bool {
    let d = digest(value);
    stored.get("refresh_token").and_then(|t| t.as_str()) == Some(value)
        || stored
            .get("replaced")
            .and_then(|r| r.as_array())
            .is_some_and(|r| r.iter().any(|x| x.as_str() == Some(d.as_str())))
}

impl Broker {
    /// Which of `manifests`' stored credentials each of `values` is, as
    /// (connector, field); `None` for one that is none of them. Each
    /// credential is read once, however many values; a connector with none
    /// stored is passed over; a value two connectors hold is refused.
    /// Compares only: nothing is released, so nothing is audited.
    pub async fn owners(
        &self,
        manifests: &[std::sync::Arc<Manifest>],
        values: &[&str],
    ) -> Result<Vec<Option<(String, &'static str)>>, BrokerError> {
        let found: Vec<String> = values.iter().map(|v| digest(v)).collect();
        let mut owners: Vec<Option<(String, &'static str)>> = vec![None; values.len()];
        for manifest in manifests {
            let stored = match self.stored(&manifest.id).await {
                Ok(stored) => stored,
                Err(BrokerError::NoCredential(_)) => continue,
                Err(e) => return Err(e),
            };
            let held: Vec<(&'static str, String)> = FIELDS
                .into_iter()
                .filter_map(|f| {
                    stored
                        .get(f)
                        .and_then(|v| v.as_str())
                        .map(|v| (f, digest(v)))
                })
                .collect();
            for (i, value) in values.iter().enumerate() {
                let field = held
                    .iter()
                    .find(|(_, d)| *d == found[i])
                    .map(|(f, _)| *f)
                    .or_else(|| holds_refresh(&stored, value).then_some("replaced_refresh_token"));
                match (field, &owners[i]) {
                    (None, _) => {}
                    (Some(_), Some((other, _))) => {
                        return Err(BrokerError::NotRotated(format!(
                            "a value is a credential of both {other} and {}: a rotation of one would end the other's; change it at the provider and store one for each",
                            manifest.id
                        )));
                    }
                    (Some(field), None) => owners[i] = Some((manifest.id.clone(), field)),
                }
            }
        }
        Ok(owners)
    }

    /// Rotates `manifest`'s refresh token for the heal `call`, revoking the
    /// old one and the `exposed` ones (each this connector's refresh token,
    /// now or replaced), and proves them refused and the new one working
    /// (see the module's doc).
    pub async fn rotate(
        &self,
        call: &CallRef,
        manifest: &Manifest,
        exposed: &[Secret],
    ) -> Result<Rotation, BrokerError> {
        let AuthKind::Oauth2RefreshToken {
            token_url,
            revocation_url,
        } = &manifest.auth
        else {
            return Err(BrokerError::NotRotated(format!(
                "{} holds a {} credential, which only its provider can change: make a new one there and store it",
                manifest.id,
                super::auth_name(&manifest.auth)
            )));
        };
        let path = secret_path(&manifest.id);
        let mut access = self.access.lock().await;
        let stored = self.stored(&manifest.id).await?;
        let (id, secret, old) = (
            field(&stored, &path, "client_id")?,
            field(&stored, &path, "client_secret")?,
            field(&stored, &path, "refresh_token")?,
        );
        if !exposed.iter().all(|v| holds_refresh(&stored, v.expose())) {
            return self
                .refuse(call, manifest, "an exposed value is none of this connector's refresh tokens (now or replaced); nothing was sent")
                .await;
        }
        let client = [
            ("client_id", id.expose()),
            ("client_secret", secret.expose()),
        ];
        // The old token first, then each exposed one not the same.
        let mut ending = vec![old.clone()];
        for v in exposed {
            if !ending.contains(v) {
                ending.push(v.clone());
            }
        }

        // 1 and 2: a new token, stored.
        let (status, body) = self.post_form(token_url, &refresh(&client, &old)).await?;
        let new = match (status.is_success(), token(&body, "refresh_token")) {
            (true, Some(new)) if new != old => new,
            (true, _) => {
                return self
                    .refuse(call, manifest, "the provider refreshed without a new refresh token: it does not rotate them; revoke the old one at the provider")
                    .await;
            }
            (false, _) => {
                let why = format!("refresh refused: {status}: {}", error_of(&body));
                return self.refuse(call, manifest, &why).await;
            }
        };
        access.remove(&manifest.id);
        let mut next = replaced(&stored, new.expose());
        self.store(call, manifest, &next).await?;
        self.log(
            call,
            manifest,
            AuditKind::Refresh,
            Some(true),
            "rotation: a new refresh token issued and stored",
        )
        .await?;

        // 3: revoked where the provider can.
        let revoked = match revocation_url {
            Some(url) => {
                for (i, t) in ending.iter().enumerate() {
                    let mut form = client.to_vec();
                    form.push(("token", t.expose()));
                    form.push(("token_type_hint", "refresh_token"));
                    let (status, body) = self.post_form(url, &form).await?;
                    if !status.is_success() {
                        let why = format!(
                            "a new refresh token is stored, but the revocation endpoint refused to revoke {}: {status}: {}",
                            which(i),
                            error_of(&body)
                        );
                        return self.refuse(call, manifest, &why).await;
                    }
                }
                true
            }
            None => false,
        };

        // 4: each refused.
        let mut probe = String::new();
        for (i, t) in ending.iter().enumerate() {
            let (status, body) = self.post_form(token_url, &refresh(&client, t)).await?;
            if status.is_success() {
                // That token still works. The newest token the provider
                // gave is the one to keep.
                if let Some(newest) = token(&body, "refresh_token") {
                    next = replaced(&next, newest.expose());
                    self.store(call, manifest, &next).await?;
                }
                let why = format!(
                    "{} is still accepted after the rotation{}; revoke it at the provider",
                    which(i),
                    if revoked {
                        " and its revocation"
                    } else {
                        " (the manifest names no revocation_url)"
                    }
                );
                return self.refuse(call, manifest, &why).await;
            }
            let error = error_of(&body);
            if !matches!(status.as_u16(), 400 | 401) || error != "invalid_grant" {
                let why = format!(
                    "{} was answered {status}: {error}, not invalid_grant: that it is dead is not proven",
                    which(i)
                );
                return self.refuse(call, manifest, &why).await;
            }
            probe = format!("{status}: {error}");
        }

        // 5: the new one works.
        let (status, body) = self.post_form(token_url, &refresh(&client, &new)).await?;
        match (status.is_success(), token(&body, "access_token")) {
            (true, Some(at)) => {
                if let Some(newest) = token(&body, "refresh_token")
                    && newest != new
                {
                    next = replaced(&next, newest.expose());
                    self.store(call, manifest, &next).await?;
                }
                let expires_in = body
                    .get("expires_in")
                    .and_then(|e| e.as_i64())
                    .unwrap_or(300);
                access.insert(
                    manifest.id.clone(),
                    (at, self.clock.now_ms() + expires_in * 1000),
                );
            }
            _ => {
                let why = format!(
                    "the old tokens are dead, and so is the new one ({status}: {}): the provider ended the whole grant; authorize the connector again and store its new refresh token",
                    error_of(&body)
                );
                return self.refuse(call, manifest, &why).await;
            }
        }

        let ended = u32::try_from(ending.len()).unwrap_or(u32::MAX);
        self.log(
            call,
            manifest,
            AuditKind::Revoke,
            Some(true),
            &format!(
                "refresh token rotated and stored; {ended} ended (the old one and {} exposed) {}, the token endpoint refuses each ({probe}), and the new one works",
                ended - 1,
                if revoked {
                    "by revocation at the provider"
                } else {
                    "by the rotation"
                }
            ),
        )
        .await?;
        Ok(Rotation {
            connector: manifest.id.clone(),
            ended,
            revoked,
            probe,
        })
    }

    /// Stores a rotated credential, tried [`STORE_TRIES`] times: the
    /// provider has issued its token, and one not stored is lost.
    async fn store(
        &self,
        call: &CallRef,
        manifest: &Manifest,
        next: &serde_json::Value,
    ) -> Result<(), BrokerError> {
        let path = secret_path(&manifest.id);
        let mut tries = 0;
        loop {
            tries += 1;
            match self
                .backend
                .write(&path, &Secret::new(next.to_string()))
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) if tries < STORE_TRIES => {
                    tracing::warn!(connector = %manifest.id, error = %e, tries, "storing a rotated refresh token failed; trying again");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(tries)))
                        .await;
                }
                Err(e) => {
                    let why = format!(
                        "a new refresh token was issued but could not be stored ({e}): authorize the connector again and store its new refresh token"
                    );
                    self.log(call, manifest, AuditKind::Refresh, Some(false), &why)
                        .await?;
                    return Err(BrokerError::NotRotated(why));
                }
            }
        }
    }

    async fn refuse(
        &self,
        call: &CallRef,
        manifest: &Manifest,
        why: &str,
    ) -> Result<Rotation, BrokerError> {
        self.log(call, manifest, AuditKind::Revoke, Some(false), why)
            .await?;
        Err(BrokerError::NotRotated(why.to_owned()))
    }

    /// Audits a rotation step against the connector rotated (the heal's
    /// own call names the operations loop's connector).
    async fn log(
        &self,
        call: &CallRef,
        manifest: &Manifest,
        kind: AuditKind,
        allowed: Option<bool>,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let mut e = AuditEntry::for_call(kind, call, allowed, reason, self.clock.now_ms());
        e.connector = Some(manifest.id.clone());
        self.keep(&e).await
    }
}

/// A refresh-token grant's form for `client` (its id and secret).
fn refresh<'a>(client: &[(&'a str, &'a str)], token: &'a Secret) -> Vec<(&'a str, &'a str)> {
    let mut form = client.to_vec();
    form.push(("grant_type", "refresh_token"));
    form.push(("refresh_token", token.expose()));
    form
}

/// The `i`th token a rotation ends, as its refusal names it.
fn which(i: usize) -> String {
    match i {
        0 => "the old refresh token".into(),
        i => format!("exposed token {i}"),
    }
}

pub(super) fn token(body: &serde_json::Value, field: &str) -> Option<Secret> {
    body.get(field).and_then(|t| t.as_str()).map(Secret::new)
}

/// An OAuth2 error answer's `error`, named only if it is one of the codes
/// RFC 6749 (§5.2) and RFC 7009 (§2.2.1) define: an outside system's own
/// text is kept nowhere.
pub(super) fn error_of(body: &serde_json::Value) -> String {
    const CODES: [&str; 9] = [
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "unsupported_token_type",
        "server_error",
        "temporarily_unavailable",
    ];
    match body.get("error").and_then(|e| e.as_str()) {
        Some(code) if CODES.contains(&code) => code.to_owned(),
        Some(_) => "an error code RFC 6749 does not define".to_owned(),
        None => "no error named".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_replaced_token_is_kept_as_a_digest_and_still_told_apart() {
        let mut stored = json!({"client_id": "c", "refresh_token": "rt-0"});
        for i in 1..=10 {
            stored = replaced(&stored, &format!("rt-{i}"));
        }
        assert_eq!(stored["refresh_token"], "rt-10");
        let kept = stored["replaced"].as_array().unwrap();
        assert_eq!(kept.len(), REPLACED_KEPT, "the newest eight");
        assert!(!stored.to_string().contains("rt-9"), "kept as digests only");
        assert!(holds_refresh(&stored, "rt-10") && holds_refresh(&stored, "rt-9"));
        assert!(holds_refresh(&stored, "rt-2") && !holds_refresh(&stored, "rt-1"));
        assert!(!holds_refresh(&stored, "c"));
    }

    #[test]
    fn only_the_rfcs_error_codes_are_named() {
        assert_eq!(
            error_of(&json!({"error": "invalid_grant"})),
            "invalid_grant"
        );
        assert_eq!(
            error_of(&json!({"error": "token rt-abc is revoked"})),
            "an error code RFC 6749 does not define"
        );
        assert_eq!(error_of(&serde_json::Value::Null), "no error named");
    }
}
