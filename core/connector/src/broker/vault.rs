//! Vault's KV v2 HTTP API as a secret backend (fleet mode). Speaks to
//! HashiCorp Vault or OpenBao: `GET /v1/<mount>/data/<prefix>/<path>` reads
//! `data.data`, `POST` with `{"data": …}` writes. The token travels in
//! `X-Vault-Token` and is never printed; a token whose policy forbids a
//! write gets a clear refusal, not a silent success.

use async_trait::async_trait;
use std::time::Duration;

use super::{BrokerError, Secret, SecretBackend};

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
}
