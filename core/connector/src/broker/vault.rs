//! Vault's KV v2 HTTP API as a secret backend (fleet mode). Speaks to
//! HashiCorp Vault or OpenBao: `GET /v1/<mount>/data/<prefix>/<path>` reads
//! `data.data`, `POST` with `{"data": …}` writes. The token travels in
//! `X-Vault-Token` and is never printed; a token whose policy forbids a
//! write gets a clear refusal, not a silent success. Its health is
//! `GET /v1/sys/health` (no token), read from the body whatever the status.

use async_trait::async_trait;
use std::time::Duration;

use super::{BackendHealth, BackendState, BrokerError, Secret, SecretBackend};

/// How long a health look may take.
const HEALTH_WITHIN: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct VaultBackend {
    addr: reqwest::Url,
    token: Secret,
    mount: String,
    prefix: String,
    http: reqwest::Client,
}

fn err(reason: impl Into<String>) -> BrokerError {
    BrokerError::Backend {
        backend: "vault",
        reason: reason.into(),
    }
}

impl VaultBackend {
    /// `addr` like `http://127.0.0.1:8200`; secrets under
    /// `<mount>/data/<prefix>/…` (KV v2).
    pub fn new(addr: &str, token: Secret, mount: &str, prefix: &str) -> Result<Self, BrokerError> {
        let addr = reqwest::Url::parse(addr).map_err(|e| err(format!("address {addr:?}: {e}")))?;
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_/".contains(&b))
        };
        if !ok(mount) || !ok(prefix) {
            return Err(err("mount and prefix are letters, digits, '-', '_', '/'"));
        }
        Ok(Self {
            addr,
            token,
            mount: mount.trim_matches('/').to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| err(e.to_string()))?,
        })
    }

    fn url(&self, path: &str) -> Result<reqwest::Url, BrokerError> {
        self.addr
            .join(&format!("v1/{}/data/{}/{}", self.mount, self.prefix, path))
            .map_err(|e| err(e.to_string()))
    }
}

/// Reads `/v1/sys/health`'s answer: its body says initialized, sealed and
/// standby whatever the status (200 active, 429 standby, 501
/// uninitialized, 503 sealed; others are performance or DR standbys).
pub fn health_of(status: u16, body: &[u8]) -> (BackendState, Option<String>, Option<String>) {
    #[derive(serde::Deserialize)]
    struct Health {
        initialized: bool,
        sealed: bool,
        #[serde(default)]
        standby: bool,
        #[serde(default)]
        version: Option<String>,
    }
    match serde_json::from_slice::<Health>(body) {
        Ok(h) => {
            let state = if !h.initialized {
                BackendState::Uninitialized
            } else if h.sealed {
                BackendState::Sealed
            } else if h.standby {
                BackendState::Standby
            } else {
                BackendState::Active
            };
            (state, h.version, None)
        }
        Err(e) => (
            BackendState::Failed,
            None,
            Some(format!("HTTP {status}: not a health answer ({e})")),
        ),
    }
}

async fn refusal(reply: reqwest::Response) -> BrokerError {
    let status = reply.status();
    let body: serde_json::Value = reply.json().await.unwrap_or_default();
    let errors = body
        .get("errors")
        .and_then(|e| e.as_array())
        .map(|e| {
            e.iter()
                .filter_map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    err(format!("{status}: {errors}"))
}

#[async_trait]
impl SecretBackend for VaultBackend {
    fn name(&self) -> &'static str {
        "vault"
    }

    async fn read(&self, path: &str) -> Result<Option<Secret>, BrokerError> {
        let reply = self
            .http
            .get(self.url(path)?)
            .header("X-Vault-Token", self.token.expose())
            .send()
            .await
            .map_err(|e| err(e.without_url().to_string()))?;
        if reply.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !reply.status().is_success() {
            return Err(refusal(reply).await);
        }
        let body: serde_json::Value = reply.json().await.map_err(|e| err(e.to_string()))?;
        let data = body
            .pointer("/data/data")
            .filter(|d| d.is_object())
            .ok_or_else(|| err(format!("{path:?}: no data.data object in the reply")))?;
        Ok(Some(Secret::new(data.to_string())))
    }

    async fn write(&self, path: &str, value: &Secret) -> Result<(), BrokerError> {
        let data: serde_json::Value = serde_json::from_str(value.expose())
            .map_err(|_| err("a KV v2 secret is a JSON object"))?;
        let reply = self
            .http
            .post(self.url(path)?)
            .header("X-Vault-Token", self.token.expose())
            .json(&serde_json::json!({ "data": data }))
            .send()
            .await
            .map_err(|e| err(e.without_url().to_string()))?;
        if !reply.status().is_success() {
            return Err(refusal(reply).await);
        }
        Ok(())
    }

    async fn health(&self) -> BackendHealth {
        // Where it is, never who it is asked as.
        let mut at = self.addr.clone();
        at.set_query(None);
        let _ = at.set_username("");
        let _ = at.set_password(None);
        let mut health = BackendHealth {
            backend: self.name().to_owned(),
            at: Some(at.as_str().trim_end_matches('/').to_owned()),
            state: BackendState::Unreachable,
            version: None,
            message: None,
        };
        let Ok(url) = self.addr.join("v1/sys/health") else {
            health.message = Some("no health URL from the address".into());
            return health;
        };
        let look = async {
            let reply = self.http.get(url).send().await?;
            let status = reply.status().as_u16();
            Ok::<_, reqwest::Error>((status, reply.bytes().await?))
        };
        match tokio::time::timeout(HEALTH_WITHIN, look).await {
            Ok(Ok((status, body))) => {
                (health.state, health.version, health.message) = health_of(status, &body);
            }
            Ok(Err(e)) => health.message = Some(e.without_url().to_string()),
            Err(_) => health.message = Some(format!("no answer within {HEALTH_WITHIN:?}")),
        }
        health
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bodies Vault and OpenBao answer, by their status.
    #[test]
    fn health_reads_the_body_whatever_the_status() {
        let body = |i: bool, s: bool, sb: bool| {
            format!(
                r#"{{"initialized":{i},"sealed":{s},"standby":{sb},"version":"2.4.1","cluster_name":"c"}}"#
            )
        };
        let cases = [
            (200, body(true, false, false), BackendState::Active),
            (429, body(true, false, true), BackendState::Standby),
            (503, body(true, true, false), BackendState::Sealed),
            (501, body(false, true, false), BackendState::Uninitialized),
        ];
        for (status, b, want) in cases {
            let (state, version, message) = health_of(status, b.as_bytes());
            assert_eq!(state, want, "{status}");
            assert_eq!(version.as_deref(), Some("2.4.1"));
            assert!(message.is_none());
        }
        let (state, _, message) = health_of(502, b"<html>bad gateway</html>");
        assert_eq!(state, BackendState::Failed);
        assert!(
            message
                .unwrap()
                .starts_with("HTTP 502: not a health answer")
        );
        let (state, _, _) = health_of(200, br#"{"sealed":false}"#);
        assert_eq!(state, BackendState::Failed, "initialized is required");
    }
}
