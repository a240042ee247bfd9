//! The outside systems a connector talks to, for real, on loopback: an
//! OpenBao dev server (Vault's API) and a small commerce API with an OAuth2
//! token endpoint that records every request it receives.

use anyhow::{Context, Result, bail};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{WAIT, free_port, kill_now};

/// An OpenBao dev server of a test's own: KV v2 at `secret/`, in memory.
pub struct OpenBao {
    child: Option<Child>,
    pub addr: String,
    pub root_token: String,
}

impl OpenBao {
    pub async fn start() -> Result<OpenBao> {
        let bao = match std::env::var("OSHAL_BAO") {
            Ok(p) => p,
            Err(_) => {
                let out = Command::new(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../scripts/openbao.sh"
                ))
                .stderr(Stdio::inherit())
                .output()
                .context("running scripts/openbao.sh")?;
                let text = String::from_utf8(out.stdout)?;
                text.lines()
                    .find_map(|l| l.strip_prefix("OSHAL_BAO="))
                    .context("scripts/openbao.sh printed no path")?
                    .to_owned()
            }
        };
        let port = free_port();
        let root_token = format!("root-{}", uuid::Uuid::new_v4().simple());
        let child = Command::new(&bao)
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={root_token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {bao}"))?;
        let bao = OpenBao {
            child: Some(child),
            addr: format!("http://127.0.0.1:{port}"),
            root_token,
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = http.get(format!("{}/v1/sys/health", bao.addr)).send().await
                && r.status().is_success()
            {
                return Ok(bao);
            }
            if Instant::now() > deadline {
                bail!("OpenBao did not answer on {}", bao.addr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A token limited to `policy` (HCL), created by the root token.
    pub async fn token_with_policy(&self, name: &str, policy: &str) -> Result<String> {
        let http = reqwest::Client::new();
        let r = http
            .put(format!("{}/v1/sys/policies/acl/{name}", self.addr))
            .header("X-Vault-Token", &self.root_token)
            .json(&json!({ "policy": policy }))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("policy {name}: {}", r.status());
        }
        let r: Value = http
            .post(format!("{}/v1/auth/token/create", self.addr))
            .header("X-Vault-Token", &self.root_token)
            .json(&json!({ "policies": [name], "ttl": "1h" }))
            .send()
            .await?
            .json()
            .await?;
        Ok(r["auth"]["client_token"]
            .as_str()
            .context("no client_token")?
            .to_owned())
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        kill_now(self.child.take());
    }
}

/// One request as the outside system received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the outside system knows and does.
#[derive(Default)]
pub struct OutsideState {
    /// The API key it accepts (`X-Api-Key`).
    pub api_key: String,
    /// OAuth2 client it accepts.
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token it accepts now (rotated on each use).
    pub refresh_token: Mutex<String>,
    /// A refresh leaves the token it replaces working until it is revoked
    /// at `/oauth/revoke` (as a provider with a reuse grace period does);
    /// unset, rotation ends it at once.
    pub keep_replaced_refresh_tokens: AtomicBool,
    /// Replaced refresh tokens that still work (see above).
    replaced: Mutex<Vec<String>>,
    access_tokens: Mutex<Vec<String>>,
    pub received: Mutex<Vec<Received>>,
    orders: Mutex<HashMap<String, Value>>,
    next_order: AtomicU32,
    /// Reads answer 503 this many more times.
    pub fail_reads: AtomicU32,
    /// Writes are applied, then the answer never comes.
    pub swallow_write_answers: AtomicBool,
    /// Reads take this long (ms) to answer.
    pub read_delay_ms: AtomicU32,
}

/// A commerce API on loopback (the shipped `shopfront` connector's shape)
/// with an OAuth2 token endpoint.
pub struct Outside {
    pub base_url: String,
    pub state: Arc<OutsideState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Outside {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Outside {
    pub async fn start(api_key: &str) -> Result<Outside> {
        let state = Arc::new(OutsideState {
            api_key: api_key.to_owned(),
            client_id: "oshal-client".into(),
            client_secret: format!("cs-{}", uuid::Uuid::new_v4().simple()),
            refresh_token: Mutex::new(format!("rt-{}", uuid::Uuid::new_v4().simple())),
            ..OutsideState::default()
        });
        let app = Router::new()
            .route("/orders", post(create_order).get(list_orders))
            .route("/orders/by-key/{key}", get(order_by_key))
            .route("/orders/{id}", get(get_order))
            .route("/oauth/token", post(token))
            .route("/oauth/revoke", post(revoke))
            .layer(axum::middleware::from_fn_with_state(state.clone(), record))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Outside {
            base_url,
            state,
            task,
        })
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Requests of `method` to paths starting with `prefix`.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.received()
            .iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .count()
    }

    /// Waits (up to `WAIT`) until a request of `method` to a path starting
    /// with `prefix` has arrived.
    pub async fn wait_for(&self, method: &str, prefix: &str) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        while self.count(method, prefix) == 0 {
            if Instant::now() > deadline {
                bail!("no {method} {prefix}… arrived within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    pub fn orders(&self) -> usize {
        self.state.orders.lock().unwrap().len()
    }

    /// An OpenAPI 3 document describing this API (for the catalog).
    pub fn openapi(&self, id: &str, auth: &str) -> Value {
        let scheme = match auth {
            "oauth2" => {
                json!({"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": format!("{}/oauth/token", self.base_url), "scopes": {}}}})
            }
            "refresh" => {
                json!({"type": "oauth2", "flows": {"authorizationCode": {"authorizationUrl": format!("{}/authorize", self.base_url), "tokenUrl": format!("{}/oauth/token", self.base_url), "x-revocation-endpoint": format!("{}/oauth/revoke", self.base_url), "scopes": {}}}})
            }
            _ => json!({"type": "apiKey", "in": "header", "name": "X-Api-Key"}),
        };
        json!({
            "openapi": "3.0.3",
            "x-oshal-id": id,
            "info": {"title": "Loopback Shop", "version": "1.0", "x-oshal-category": "commerce"},
            "servers": [{"url": self.base_url}],
            "components": {"securitySchemes": {"shop": scheme}},
            "paths": {
                "/orders/{order_id}": {"get": {"operationId": "get_order", "security": [{"shop": ["orders:read"]}],
                    "parameters": [{"name": "order_id", "in": "path", "required": true, "schema": {"type": "string"}}]}},
                "/orders/by-key/{idempotency_key}": {"get": {"operationId": "find_order_by_key", "security": [{"shop": ["orders:read"]}],
                    "parameters": [{"name": "idempotency_key", "in": "path", "required": true, "schema": {"type": "string"}}]}},
                "/orders": {
                    "get": {"operationId": "list_orders", "security": [{"shop": ["orders:read"]}],
                        "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}]},
                    "post": {"operationId": "create_order", "x-oshal-reconcile": "find_order_by_key",
                        "security": [{"shop": ["orders:read", "orders:write"]}],
                        "requestBody": {"content": {"application/json": {"schema": {"type": "object",
                            "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1}, "amount": {"type": "number"}},
                            "required": ["sku", "quantity", "amount"]}}}}}
                }
            }
        })
    }
}

async fn record(
    State(state): State<Arc<OutsideState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    state.received.lock().unwrap().push(Received {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        at: Instant::now(),
    });
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

fn authorized(state: &OutsideState, headers: &HeaderMap) -> bool {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    (!state.api_key.is_empty() && h("x-api-key") == state.api_key)
        || h("authorization")
            .strip_prefix("Bearer ")
            .is_some_and(|t| state.access_tokens.lock().unwrap().iter().any(|a| a == t))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "unauthorized"})),
    )
        .into_response()
}

async fn read_gate(state: &OutsideState, headers: &HeaderMap) -> Option<Response> {
    let delay = state.read_delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay.into())).await;
    }
    if !authorized(state, headers) {
        return Some(unauthorized());
    }
    let failing = state
        .fail_reads
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    failing.then(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "try later"})),
        )
            .into_response()
    })
}

async fn get_order(
    State(state): State<Arc<OutsideState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = read_gate(&state, &headers).await {
        return r;
    }
    let orders = state.orders.lock().unwrap();
    match orders.values().find(|o| o["id"] == id.as_str()) {
        Some(o) => Json(o.clone()).into_response(),
        None => Json(json!({"id": id, "status": "paid", "sku": "sku-1", "amount": 12.5}))
            .into_response(),
    }
}

async fn list_orders(State(state): State<Arc<OutsideState>>, headers: HeaderMap) -> Response {
    if let Some(r) = read_gate(&state, &headers).await {
        return r;
    }
    let orders: Vec<Value> = state.orders.lock().unwrap().values().cloned().collect();
    Json(json!({ "orders": orders })).into_response()
}

async fn order_by_key(
    State(state): State<Arc<OutsideState>>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    match state.orders.lock().unwrap().get(&key) {
        Some(o) => Json(o.clone()).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such order"})),
        )
            .into_response(),
    }
}

async fn create_order(
    State(state): State<Arc<OutsideState>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if !authorized(&state, &headers) {
        return unauthorized();
    }
    let Some(key) = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "Idempotency-Key required"})),
        )
            .into_response();
    };
    let order = {
        let mut orders = state.orders.lock().unwrap();
        orders
            .entry(key.clone())
            .or_insert_with(|| {
                let n = state.next_order.fetch_add(1, Ordering::SeqCst) + 1;
                json!({"id": format!("ord-{n}"), "key": key, "status": "open", "sku": body["sku"], "amount": body["amount"]})
            })
            .clone()
    };
    if state.swallow_write_answers.load(Ordering::SeqCst) {
        // Applied, and the answer is lost: the caller cannot know.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    (StatusCode::CREATED, Json(order)).into_response()
}

/// An OAuth2 endpoint's form, once its client authenticated (RFC 6749
/// §2.3.1, in the body); `invalid_client` if it did not.
fn client_form(state: &OutsideState, body: &str) -> Result<HashMap<String, String>, Box<Response>> {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != state.client_id || get("client_secret") != state.client_secret {
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid_client"})),
            )
                .into_response(),
        ));
    }
    Ok(form)
}

/// RFC 7009 token revocation: the client authenticates; any token it
/// names stops working (an unknown one answers 200 all the same).
async fn revoke(State(state): State<Arc<OutsideState>>, body: String) -> Response {
    let form = match client_form(&state, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let token = get("token");
    if token.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request"})),
        )
            .into_response();
    }
    state.replaced.lock().unwrap().retain(|r| r != token);
    state.access_tokens.lock().unwrap().retain(|a| a != token);
    let mut current = state.refresh_token.lock().unwrap();
    if *current == token {
        // Revoked with no successor: no refresh token works any more.
        *current = format!("revoked-{}", uuid::Uuid::new_v4().simple());
    }
    StatusCode::OK.into_response()
}

async fn token(State(state): State<Arc<OutsideState>>, body: String) -> Response {
    let form = match client_form(&state, &body) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let mut reply = json!({"token_type": "Bearer", "expires_in": 3600});
    match get("grant_type") {
        "client_credentials" => {}
        "refresh_token" => {
            let mut current = state.refresh_token.lock().unwrap();
            let offered = get("refresh_token");
            let replaced = state.replaced.lock().unwrap().iter().any(|r| r == offered);
            if offered != current.as_str() && !replaced {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "invalid_grant"})),
                )
                    .into_response();
            }
            if state.keep_replaced_refresh_tokens.load(Ordering::SeqCst) {
                state.replaced.lock().unwrap().push(current.clone());
            }
            *current = format!("rt-{}", uuid::Uuid::new_v4().simple());
            reply["refresh_token"] = json!(current.clone());
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "unsupported_grant_type"})),
            )
                .into_response();
        }
    }
    let access = format!("at-{}", uuid::Uuid::new_v4().simple());
    state.access_tokens.lock().unwrap().push(access.clone());
    reply["access_token"] = json!(access);
    Json(reply).into_response()
}
