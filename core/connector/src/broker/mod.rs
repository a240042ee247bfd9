//! The token broker: the only module that reads secrets.
//!
//! A connector's credential lives in a secret backend — the OS keyring in
//! local mode ([`keyring::KeyringBackend`]), Vault's KV v2 HTTP API in fleet
//! mode ([`vault::VaultBackend`]; tested against OpenBao) — under
//! `connector/<id>`, as a JSON object (`api_key`, `token`, or `client_id` +
//! `client_secret` [+ `refresh_token`]). Nothing else reads it.
//!
//! The runtime asks for a short-lived [`ToolToken`] bound to (ticket,
//! attempt, bot, connector, scopes, expiry) just before it calls out, and
//! exchanges it, per HTTP request, for a [`Credential`] it puts on that one
//! request. A token is a random 256-bit string kept only as its SHA-256;
//! cancelling a ticket revokes its tokens at once, and every later exchange
//! fails. OAuth2 access tokens are fetched and refreshed here (a rotated
//! refresh token is written back), and a refresh token found exposed is
//! told apart by digest and rotated here ([`rotate`]). Every credential
//! read for a call and every refresh is audited with its token id,
//! ticket, attempt, bot and operation; every rotation step with its heal's
//! ticket (a digest comparison releases nothing and is not).
//!
//! [`Secret`] has no `Serialize` and prints as `Secret(***)`: a credential
//! cannot reach a lane message, an event, a stored result or a log line by
//! accident.

pub mod keyring;
mod rotate;
pub mod vault;

pub use rotate::Rotation;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::call::CallRef;
use crate::clock::{SharedClock, UnixMs};
use crate::manifest::{AuthKind, Manifest};
use crate::store::{AuditEntry, AuditKind, ConnectorDb};
use crate::ticket::{TenantId, TicketId};

/// How long a tool token lives.
pub const TOKEN_TTL: Duration = Duration::from_secs(60);
/// An OAuth2 access token is refreshed this long before it expires.
const REFRESH_EARLY_MS: i64 = 30_000;

/// A secret value. Not serializable; redacted when printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    #[error("tool token refused: {0}")]
    TokenRefused(String),
    #[error("no credential stored for {0:?}")]
    NoCredential(String),
    #[error("credential for {path:?} lacks field {field:?}")]
    CredentialField { path: String, field: &'static str },
    #[error("secret backend {backend}: {reason}")]
    Backend {
        backend: &'static str,
        reason: String,
    },
    #[error("OAuth2 token endpoint: {0}")]
    OAuth(String),
    #[error("audit failed: {0}")]
    Audit(String),
    /// The credential cannot be rotated from here (a static key, a provider
    /// that does not rotate), or the rotation did not take: why.
    #[error("cannot rotate: {0}")]
    NotRotated(String),
}

/// Where secrets live.
#[async_trait]
pub trait SecretBackend: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    async fn read(&self, path: &str) -> Result<Option<Secret>, BrokerError>;
    async fn write(&self, path: &str, value: &Secret) -> Result<(), BrokerError>;
    /// How the backend is now, as the topology draws it. A backend in this
    /// process (the OS keyring) has no server to ask: it is `Local`.
    async fn health(&self) -> BackendHealth {
        BackendHealth {
            backend: self.name().to_owned(),
            at: None,
            state: BackendState::Local,
            version: None,
            message: None,
        }
    }
}

/// A secret backend as one look found it (never a secret or a token).
#[derive(
    Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, specta::Type, utoipa::ToSchema,
)]
pub struct BackendHealth {
    /// `keyring` or `vault`.
    pub backend: String,
    /// The server's address, for one that has a server.
    pub at: Option<String>,
    pub state: BackendState,
    /// The server's release, as it says.
    pub version: Option<String>,
    /// What went wrong, in its words.
    pub message: Option<String>,
}

/// Vault's (and OpenBao's) own words for its health (`/v1/sys/health`),
/// and the keyring's.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    specta::Type,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum BackendState {
    /// The OS keyring of this process's host: nothing to ask.
    Local,
    /// Initialized, unsealed and active: it serves reads and writes.
    Active,
    /// Unsealed, a standby of an active node.
    Standby,
    /// Sealed: it serves nothing until unsealed.
    Sealed,
    /// Never initialized.
    Uninitialized,
    /// It could not be reached, or did not answer in time.
    Unreachable,
    /// It answered in no shape its health endpoint has.
    Failed,
}

/// A capability for one call, handed to the runtime. Printing shows only its id.
#[derive(Clone)]
pub struct ToolToken {
    secret: String,
    pub id: String,
}

impl ToolToken {
    /// A well-formed token the broker never issued: what the fail-closed
    /// probe presents.
    pub fn forged() -> Self {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the OS has randomness");
        Self {
            secret: format!("otk_{}", B64.encode(raw)),
            id: "tok_forged".into(),
        }
    }
}

impl std::fmt::Debug for ToolToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ToolToken({})", self.id)
    }
}

/// What goes on one outgoing request.
#[derive(Debug, Clone)]
pub struct Credential {
    pub header: String,
    pub value: Secret,
}

#[derive(Debug, Clone)]
struct Binding {
    id: String,
    tenant: Option<TenantId>,
    ticket: TicketId,
    attempt: u32,
    bot: String,
    connector: String,
    scopes: Vec<String>,
    expires_at: UnixMs,
    revoked: bool,
}

#[derive(Debug)]
pub struct Broker {
    backend: Arc<dyn SecretBackend>,
    db: ConnectorDb,
    clock: SharedClock,
    http: reqwest::Client,
    tokens: Mutex<HashMap<[u8; 32], Binding>>,
    access: tokio::sync::Mutex<HashMap<String, (Secret, UnixMs)>>,
}

/// Where a connector's credential lives in the backend.
pub fn secret_path(connector: &str) -> String {
    format!("connector/{connector}")
}

impl Broker {
    pub fn new(backend: Arc<dyn SecretBackend>, db: ConnectorDb, clock: SharedClock) -> Self {
        Self {
            backend,
            db,
            clock,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a reqwest client builds"),
            tokens: Mutex::default(),
            access: tokio::sync::Mutex::default(),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// How the secret backend is now (a Vault is asked).
    pub async fn backend_health(&self) -> BackendHealth {
        self.backend.health().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Binding>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a connector's credential (an operator's action; never a
    /// bot's), replacing it whole; the access token cached from the old one
    /// is dropped. Taken under the access-token lock, so it never races a
    /// refresh or a rotation writing the credential back.
    pub async fn store_credential(
        &self,
        connector: &str,
        value: &serde_json::Value,
    ) -> Result<(), BrokerError> {
        let mut access = self.access.lock().await;
        self.backend
            .write(&secret_path(connector), &Secret::new(value.to_string()))
            .await?;
        access.remove(connector);
        Ok(())
    }

    /// Stores one of the platform's own credentials (`platform/<name>`:
    /// the mesh's Headscale API key), an operator's action. Kept as
    /// `{"value": …}`, the JSON object every backend holds.
    pub async fn store_platform_secret(
        &self,
        name: &str,
        value: &Secret,
    ) -> Result<(), BrokerError> {
        let object = serde_json::json!({ "value": value.expose() });
        self.backend
            .write(
                &format!("platform/{name}"),
                &Secret::new(object.to_string()),
            )
            .await
    }

    /// One of the platform's own credentials, for the controller's own
    /// calls (never a bot's, never a connector's).
    pub async fn platform_secret(&self, name: &str) -> Result<Option<Secret>, BrokerError> {
        let path = format!("platform/{name}");
        let Some(stored) = self.backend.read(&path).await? else {
            return Ok(None);
        };
        serde_json::from_str::<serde_json::Value>(stored.expose())
            .ok()
            .and_then(|v| v.get("value").and_then(|v| v.as_str()).map(Secret::new))
            .map(Some)
            .ok_or(BrokerError::CredentialField {
                path,
                field: "value",
            })
    }

    /// Issues a token for `call`, bound to `scopes`, living [`TOKEN_TTL`].
    pub fn issue(&self, call: &CallRef, scopes: &[String]) -> ToolToken {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the OS has randomness");
        let secret = format!("otk_{}", B64.encode(raw));
        let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let id = format!("tok_{}", crate::text::hex(&hash[..8]));
        let now = self.clock.now_ms();
        let mut tokens = self.lock();
        tokens.retain(|_, b| b.expires_at > now);
        tokens.insert(
            hash,
            Binding {
                id: id.clone(),
                tenant: call.tenant.clone(),
                ticket: call.ticket,
                attempt: call.attempt,
                bot: call.bot.to_string(),
                connector: call.connector.clone(),
                scopes: scopes.to_vec(),
                expires_at: now + TOKEN_TTL.as_millis() as i64,
                revoked: false,
            },
        );
        ToolToken { secret, id }
    }

    /// Revokes every token of `ticket` at once (later exchanges fail);
    /// the audit rows follow on a task of their own. Returns how many
    /// tokens were live.
    pub fn revoke_ticket(&self, ticket: TicketId) -> usize {
        let revoked: Vec<(String, Option<TenantId>)> = {
            let mut tokens = self.lock();
            tokens
                .values_mut()
                .filter(|b| b.ticket == ticket && !b.revoked)
                .map(|b| {
                    b.revoked = true;
                    (b.id.clone(), b.tenant.clone())
                })
                .collect()
        };
        let count = revoked.len();
        if count > 0 {
            let (db, at) = (self.db.clone(), self.clock.now_ms());
            let audit = async move {
                for (id, tenant) in revoked {
                    let mut e = AuditEntry::new(AuditKind::Revoke, "ticket cancelled");
                    e.at_ms = at;
                    e.tenant = tenant;
                    e.ticket = Some(ticket);
                    e.token_id = Some(id);
                    if let Err(err) = db.audit(&e).await {
                        tracing::error!(error = %err, "could not audit a revocation");
                    }
                }
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(audit);
                }
                Err(_) => tracing::error!("revocation outside a runtime: not audited"),
            }
        }
        count
    }

    /// Exchanges `token` for the credential of one request of `call`.
    pub async fn exchange(
        &self,
        token: &ToolToken,
        call: &CallRef,
        manifest: &Manifest,
        needs: &[String],
    ) -> Result<Credential, BrokerError> {
        let hash: [u8; 32] = Sha256::digest(token.secret.as_bytes()).into();
        let binding = self
            .lock()
            .get(&hash)
            .cloned()
            .ok_or_else(|| BrokerError::TokenRefused("unknown or expired token".into()))?;
        let refused = if binding.revoked {
            Some("revoked (its ticket was cancelled)".to_owned())
        } else if binding.expires_at <= self.clock.now_ms() {
            Some("expired".to_owned())
        } else if binding.ticket != call.ticket
            || binding.tenant != call.tenant
            || binding.attempt != call.attempt
            || binding.bot != call.bot.as_str()
            || binding.connector != call.connector
        {
            Some("bound to another call".to_owned())
        } else {
            needs
                .iter()
                .find(|s| !binding.scopes.contains(s))
                .map(|s| format!("lacks scope {s}"))
        };
        if let Some(reason) = refused {
            self.audit(
                AuditKind::CredentialRead,
                call,
                &binding.id,
                Some(false),
                &format!("refused: {reason}"),
            )
            .await?;
            return Err(BrokerError::TokenRefused(reason));
        }
        let credential = self.credential(call, &binding.id, manifest).await?;
        self.audit(
            AuditKind::CredentialRead,
            call,
            &binding.id,
            Some(true),
            &format!(
                "{} credential from {}",
                auth_name(&manifest.auth),
                self.backend.name()
            ),
        )
        .await?;
        Ok(credential)
    }

    async fn audit(
        &self,
        kind: AuditKind,
        call: &CallRef,
        token_id: &str,
        allowed: Option<bool>,
        reason: &str,
    ) -> Result<(), BrokerError> {
        let mut e = AuditEntry::for_call(kind, call, allowed, reason, self.clock.now_ms());
        e.token_id = Some(token_id.to_owned());
        self.keep(&e).await
    }

    async fn keep(&self, e: &AuditEntry) -> Result<(), BrokerError> {
        self.db
            .audit(e)
            .await
            .map_err(|e| BrokerError::Audit(e.to_string()))
    }

    async fn stored(&self, connector: &str) -> Result<serde_json::Value, BrokerError> {
        let path = secret_path(connector);
        let secret = self
            .backend
            .read(&path)
            .await?
            .ok_or_else(|| BrokerError::NoCredential(path.clone()))?;
        serde_json::from_str(secret.expose()).map_err(|_| BrokerError::Backend {
            backend: self.backend.name(),
            reason: format!("the secret at {path:?} is not a JSON object"),
        })
    }

    async fn credential(
        &self,
        call: &CallRef,
        token_id: &str,
        manifest: &Manifest,
    ) -> Result<Credential, BrokerError> {
        let path = secret_path(&manifest.id);
        let field = |v: &serde_json::Value, f: &'static str| field(v, &path, f);
        match &manifest.auth {
            AuthKind::ApiKey { header } => {
                let stored = self.stored(&manifest.id).await?;
                Ok(Credential {
                    header: header.clone(),
                    value: field(&stored, "api_key")?,
                })
            }
            AuthKind::Bearer => {
                let stored = self.stored(&manifest.id).await?;
                Ok(Credential {
                    header: "Authorization".into(),
                    value: Secret::new(format!("Bearer {}", field(&stored, "token")?.expose())),
                })
            }
            AuthKind::Oauth2ClientCredentials { token_url }
            | AuthKind::Oauth2RefreshToken { token_url, .. } => {
                let mut access = self.access.lock().await;
                let now = self.clock.now_ms();
                if let Some((token, until)) = access.get(&manifest.id)
                    && *until - REFRESH_EARLY_MS > now
                {
                    return Ok(bearer(token));
                }
                let stored = self.stored(&manifest.id).await?;
                let mut form = vec![
                    ("client_id", field(&stored, "client_id")?),
                    ("client_secret", field(&stored, "client_secret")?),
                ];
                let refresh = matches!(manifest.auth, AuthKind::Oauth2RefreshToken { .. });
                if refresh {
                    form.push(("grant_type", Secret::new("refresh_token")));
                    form.push(("refresh_token", field(&stored, "refresh_token")?));
                } else {
                    form.push(("grant_type", Secret::new("client_credentials")));
                    let scopes: Vec<&str> = manifest.all_scopes().into_iter().collect();
                    form.push(("scope", Secret::new(scopes.join(" "))));
                }
                let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.expose())).collect();
                let (status, body) = self.post_form(token_url, &form).await?;
                let token = match rotate::token(&body, "access_token") {
                    Some(t) if status.is_success() => t,
                    _ => {
                        let error = match status.is_success() {
                            true => "no access_token".to_owned(),
                            false => rotate::error_of(&body),
                        };
                        self.audit(
                            AuditKind::Refresh,
                            call,
                            token_id,
                            Some(false),
                            &format!("{status}: {error}"),
                        )
                        .await?;
                        return Err(BrokerError::OAuth(format!("{status}: {error}")));
                    }
                };
                let expires_in = body
                    .get("expires_in")
                    .and_then(|e| e.as_i64())
                    .unwrap_or(300);
                let mut rotated = false;
                if let Some(new_refresh) = body.get("refresh_token").and_then(|t| t.as_str())
                    && refresh
                    && Some(new_refresh) != stored.get("refresh_token").and_then(|t| t.as_str())
                {
                    let next = rotate::replaced(&stored, new_refresh);
                    self.backend
                        .write(&path, &Secret::new(next.to_string()))
                        .await?;
                    rotated = true;
                }
                self.audit(
                    AuditKind::Refresh,
                    call,
                    token_id,
                    Some(true),
                    &format!(
                        "{} access token for {expires_in} s{}",
                        if refresh {
                            "refreshed"
                        } else {
                            "client-credentials"
                        },
                        if rotated {
                            "; refresh token rotated and stored"
                        } else {
                            ""
                        }
                    ),
                )
                .await?;
                access.insert(
                    manifest.id.clone(),
                    (token.clone(), now + expires_in * 1000),
                );
                Ok(bearer(&token))
            }
        }
    }
}

impl Broker {
    /// POSTs `form` to an OAuth2 endpoint and reads its JSON answer (an
    /// empty answer, which RFC 7009's revocation may give, reads as null).
    async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(reqwest::StatusCode, serde_json::Value), BrokerError> {
        let reply = self
            .http
            .post(url)
            .form(form)
            .send()
            .await
            .map_err(|e| BrokerError::OAuth(e.without_url().to_string()))?;
        let status = reply.status();
        let bytes = reply
            .bytes()
            .await
            .map_err(|e| BrokerError::OAuth(e.without_url().to_string()))?;
        // An answer that is no JSON (RFC 7009's revocation may give any
        // body) reads as null: what follows judges by the status and the
        // fields it needs.
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        ))
    }
}

/// A stored credential's field `f` (at `path`, for the error).
fn field(stored: &serde_json::Value, path: &str, f: &'static str) -> Result<Secret, BrokerError> {
    stored
        .get(f)
        .and_then(|s| s.as_str())
        .map(Secret::new)
        .ok_or_else(|| BrokerError::CredentialField {
            path: path.to_owned(),
            field: f,
        })
}

fn bearer(token: &Secret) -> Credential {
    Credential {
        header: "Authorization".into(),
        value: Secret::new(format!("Bearer {}", token.expose())),
    }
}

fn auth_name(auth: &AuthKind) -> &'static str {
    match auth {
        AuthKind::ApiKey { .. } => "api key",
        AuthKind::Bearer => "bearer",
        AuthKind::Oauth2ClientCredentials { .. } => "oauth2 client-credentials",
        AuthKind::Oauth2RefreshToken { .. } => "oauth2 refresh-token",
    }
}
