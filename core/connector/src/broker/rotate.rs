//! A connector credential found exposed: whose it is, and its rotation.
//!
//! [`Broker::owner`] tells which stored credential a found value is (the
//! connector and the field), comparing SHA-256 digests inside the broker:
//! the value is never written anywhere and the stored ones never leave.
//! A refresh token the provider replaced is still told apart
//! (`replaced_refresh_token`): its digest is kept with the credential (the
//! last [`REPLACED_KEPT`]), since a provider with a reuse grace period
//! still takes it.
//!
//! [`Broker::rotate`] replaces an OAuth2 refresh token and proves the old
//! one and the exposed ones dead, in four steps, under the access-token
//! lock (so no call refreshes with the old token meanwhile):
//! 1. refresh now; the provider must answer with a new refresh token (one
//!    that does not rotate them cannot be rotated from here);
//! 2. store the new one and the new access token, dropping the cached one;
//! 3. revoke the old one and each exposed one at the manifest's RFC 7009
//!    `revocation_url`, if it names one;
//! 4. probe: each of them, offered again, must be refused.
//!
//! A probe the provider accepts means that token still works (it is
//! neither rotated away nor revoked): the newest token it answered with is
//! stored, so nothing is lost, and the rotation is refused as not done.
//! Only values the broker holds as this connector's refresh tokens (now or
//! replaced) are ever sent: an exposed value that is not is refused before
//! anything is sent.
//! Static keys (`api_key`, `bearer`) and client secrets are changed at the
//! provider; they are refused, naming why.

use sha2::{Digest, Sha256};

use super::{Broker, BrokerError, Secret, secret_path};
use crate::call::CallRef;
use crate::manifest::{AuthKind, Manifest};
use crate::store::{AuditEntry, AuditKind};

/// The credential fields a stored credential may hold, in the order they
/// are compared.
const FIELDS: [&str; 4] = ["refresh_token", "client_secret", "api_key", "token"];
/// How many replaced refresh tokens' digests a credential keeps.
pub const REPLACED_KEPT: usize = 8;

fn digest(value: &str) -> String {
    format!("{:x}", Sha256::digest(value.as_bytes()))
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

/// What a rotation did; never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub connector: String,
    /// Whether the old token was revoked at the provider's revocation
    /// endpoint (false: the manifest names none, and rotation alone ended it).
    pub revoked: bool,
    /// The token endpoint's answer to the old refresh token, offered again
    /// after the rotation (`400 invalid_grant` for one that is dead).
    pub probe: String,
}

impl Broker {
    /// Which of `manifests`' stored credentials `value` is, as (connector,
    /// field); `None` when it is none of them. A connector with no stored
    /// credential is passed over.
    pub async fn owner(
        &self,
        manifests: &[std::sync::Arc<Manifest>],
        value: &str,
    ) -> Result<Option<(String, &'static str)>, BrokerError> {
        let found = digest(value);
        for manifest in manifests {
            let stored = match self.stored(&manifest.id).await {
                Ok(stored) => stored,
                Err(BrokerError::NoCredential(_)) => continue,
                Err(e) => return Err(e),
            };
            for field in FIELDS {
                if let Some(held) = stored.get(field).and_then(|v| v.as_str())
                    && digest(held) == found
                {
                    return Ok(Some((manifest.id.clone(), field)));
                }
            }
            let replaced = stored.get("replaced").and_then(|r| r.as_array());
            if replaced.is_some_and(|r| r.iter().any(|d| d.as_str() == Some(found.as_str()))) {
                return Ok(Some((manifest.id.clone(), "replaced_refresh_token")));
            }
        }
        Ok(None)
    }

    /// Rotates `manifest`'s refresh token for the heal `call`, revoking the
    /// old one and the `exposed` ones (each this connector's refresh token,
    /// now or replaced), and proves them refused (see the module's doc).
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
        let field = |f: &'static str| {
            stored
                .get(f)
                .and_then(|v| v.as_str())
                .map(Secret::new)
                .ok_or_else(|| BrokerError::CredentialField {
                    path: path.clone(),
                    field: f,
                })
        };
        let (id, secret, old) = (
            field("client_id")?,
            field("client_secret")?,
            field("refresh_token")?,
        );
        let held = stored.get("replaced").and_then(|r| r.as_array());
        let ours = |v: &Secret| {
            v == &old
                || held.is_some_and(|r| {
                    r.iter()
                        .any(|d| d.as_str() == Some(digest(v.expose()).as_str()))
                })
        };
        if !exposed.iter().all(ours) {
            return self
                .refuse(call, manifest, "an exposed value is none of this connector's refresh tokens (now or replaced); nothing was sent")
                .await;
        }
        // The old token first, then each exposed one not the same.
        let mut ending = vec![old.clone()];
        for v in exposed {
            if !ending.contains(v) {
                ending.push(v.clone());
            }
        }
        let client = [
            ("client_id", id.expose()),
            ("client_secret", secret.expose()),
        ];

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
        let mut next = replaced(&stored, new.expose());
        self.backend
            .write(&path, &Secret::new(next.to_string()))
            .await?;
        access.remove(&manifest.id);
        if let Some(at) = token(&body, "access_token") {
            let expires_in = body
                .get("expires_in")
                .and_then(|e| e.as_i64())
                .unwrap_or(300);
            access.insert(
                manifest.id.clone(),
                (at, self.clock.now_ms() + expires_in * 1000),
            );
        }

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

        let mut probe = String::new();
        for (i, t) in ending.iter().enumerate() {
            let (status, body) = self.post_form(token_url, &refresh(&client, t)).await?;
            if status.is_success() {
                // That token still works. The newest token the provider
                // gave is the one to keep.
                if let Some(newest) = token(&body, "refresh_token") {
                    next = replaced(&next, newest.expose());
                    self.backend
                        .write(&path, &Secret::new(next.to_string()))
                        .await?;
                }
                access.remove(&manifest.id);
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
            probe = format!("{status}: {}", error_of(&body));
        }
        self.log(
            AuditKind::Revoke,
            call,
            manifest,
            Some(true),
            &format!(
                "refresh token rotated and stored; {} ended (the old one and {} exposed) {}, and the token endpoint refuses each ({probe})",
                ending.len(),
                ending.len() - 1,
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
            revoked,
            probe,
        })
    }

    async fn refuse(
        &self,
        call: &CallRef,
        manifest: &Manifest,
        why: &str,
    ) -> Result<Rotation, BrokerError> {
        self.log(AuditKind::Revoke, call, manifest, Some(false), why)
            .await?;
        Err(BrokerError::NotRotated(why.to_owned()))
    }

    /// Audits a rotation step against the connector rotated (the heal's
    /// own call names the operations loop's connector).
    async fn log(
        &self,
        kind: AuditKind,
        call: &CallRef,
        manifest: &Manifest,
        allowed: Option<bool>,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let mut e = AuditEntry::for_call(kind, call, allowed, reason, self.clock.now_ms());
        e.connector = Some(manifest.id.clone());
        self.db
            .audit(&e)
            .await
            .map_err(|e| BrokerError::Audit(e.to_string()))
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

fn token(body: &serde_json::Value, field: &str) -> Option<Secret> {
    body.get(field).and_then(|t| t.as_str()).map(Secret::new)
}

/// An OAuth2 error answer's `error` (never a token: an error answer holds
/// none).
fn error_of(body: &serde_json::Value) -> String {
    body.get("error")
        .and_then(|e| e.as_str())
        .unwrap_or("no error named")
        .chars()
        .take(120)
        .collect()
}
