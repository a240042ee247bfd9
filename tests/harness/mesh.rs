//! Fixture servers for the daemons that cannot be installed here, each
//! over a real transport and in its documented shapes (`oshal_mesh::fixtures`,
//! built from Headscale's protos and Tailscale's `ipnstate`):
//! - [`Headscale`]: the REST API on a loopback port, as 0.26, 0.27 or
//!   0.28 answers it (node shapes, `/version` from 0.27, API key forms,
//!   pre-auth keys by user id or, from 0.28, by tags alone; a refused key
//!   is a plain-text `401 Unauthorized`; errors in the gateway's
//!   `{"code", "message", "details"}`).
//! - [`Tailscaled`]: the LocalAPI on a unix socket, refusing any Host but
//!   `local-tailscaled.sock` and any Origin or Referer, as tailscaled does.

use anyhow::Result;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// Serves `app` on `listener` until the token it returns is cancelled.
fn serve_until_dropped<L>(listener: L, app: Router) -> CancellationToken
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(until.cancelled_owned())
            .await
            .ok();
    });
    stop
}

/// Which Headscale a fixture plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Release {
    V0_26,
    V0_27,
    V0_28,
}

struct HsState {
    release: Release,
    api_key: String,
    nodes: Vec<Value>,
    keys: Vec<Value>,
    policy: String,
    next_key: u64,
    /// Requests under `/api/v1`, with or without a good key.
    calls: u64,
}

/// A Headscale REST API on a loopback port.
pub struct Headscale {
    pub url: String,
    pub api_key: String,
    state: Arc<Mutex<HsState>>,
    stop: CancellationToken,
}

impl Drop for Headscale {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn random(n: usize) -> String {
    uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .chain(uuid::Uuid::new_v4().simple().to_string().chars())
        .cycle()
        .take(n)
        .collect()
}

fn gateway(status: StatusCode, code: u16, message: &str) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message, "details": []})),
    )
        .into_response()
}

impl Headscale {
    pub async fn start(release: Release) -> Result<Headscale> {
        let api_key = match release {
            Release::V0_28 => format!("hskey-api-{}-{}", random(12), random(64)),
            _ => format!("{}.{}", random(7), random(32)),
        };
        let nodes = match release {
            Release::V0_28 => oshal_mesh::fixtures::HEADSCALE_0_28_NODES,
            _ => oshal_mesh::fixtures::HEADSCALE_0_26_NODES,
        };
        let nodes: Value = serde_json::from_str(nodes)?;
        let state = Arc::new(Mutex::new(HsState {
            release,
            api_key: api_key.clone(),
            nodes: nodes["nodes"].as_array().cloned().unwrap_or_default(),
            keys: Vec::new(),
            policy: oshal_mesh::fixtures::POLICY.to_owned(),
            next_key: 1,
            calls: 0,
        }));
        let api = Router::new()
            .route("/node", get(hs_nodes))
            .route("/user", get(hs_users))
            .route("/preauthkey", get(hs_keys).post(hs_create_key))
            .route("/policy", get(hs_policy).put(hs_set_policy))
            .layer(axum::middleware::from_fn_with_state(state.clone(), hs_auth));
        let app = Router::new()
            .route(
                "/health",
                get(|| async {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/health+json; charset=utf-8",
                        )],
                        r#"{"status":"pass"}"#,
                    )
                }),
            )
            .route("/version", get(hs_version))
            .nest("/api/v1", api)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = serve_until_dropped(listener, app);
        Ok(Headscale {
            url,
            api_key,
            state,
            stop,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut HsState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// The control server's word on a node.
    pub fn set_online(&self, name: &str, online: bool) {
        self.with(|s| {
            for n in &mut s.nodes {
                if n["name"] == name {
                    n["online"] = json!(online);
                }
            }
        });
    }

    /// Every key minted so far expires now (`headscale preauthkeys expire`).
    pub fn expire_keys(&self) {
        self.with(|s| {
            for k in &mut s.keys {
                k["expiration"] = json!("2020-01-01T00:00:00Z");
            }
        });
    }

    /// The API key is revoked: every request is refused from now on.
    pub fn revoke_api_key(&self) {
        self.with(|s| s.api_key = "revoked".into());
    }

    /// Requests under `/api/v1` so far.
    pub fn calls(&self) -> u64 {
        self.with(|s| s.calls)
    }

    /// No policy stored (database mode before the first write): `GET
    /// /api/v1/policy` answers as Headscale does then.
    pub fn clear_policy(&self) {
        self.with(|s| s.policy.clear());
    }

    /// The policy in force.
    pub fn policy(&self) -> String {
        self.with(|s| s.policy.clone())
    }

    /// The keys minted, as Headscale keeps them.
    pub fn keys(&self) -> Vec<Value> {
        self.with(|s| s.keys.clone())
    }
}

type Hs = State<Arc<Mutex<HsState>>>;

async fn hs_auth(
    State(state): Hs,
    headers: HeaderMap,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let ok = {
        let mut s = state.lock().unwrap();
        s.calls += 1;
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|k| k == s.api_key)
    };
    if !ok {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    next.run(req).await
}

async fn hs_version(State(state): Hs) -> Response {
    let release = state.lock().unwrap().release;
    let version = match release {
        Release::V0_26 => return (StatusCode::NOT_FOUND, "404 page not found").into_response(),
        Release::V0_27 => "v0.27.1",
        Release::V0_28 => "v0.28.0",
    };
    Json(json!({
        "version": version, "commit": "fixture", "buildTime": "2026-11-01T00:00:00Z",
        "go": {"version": "go1.25.1", "os": "linux", "arch": "amd64"}, "dirty": false
    }))
    .into_response()
}

async fn hs_nodes(State(state): Hs) -> Json<Value> {
    Json(json!({"nodes": state.lock().unwrap().nodes}))
}

async fn hs_users(Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    let users: Value = serde_json::from_str(oshal_mesh::fixtures::HEADSCALE_USERS).unwrap();
    let list: Vec<Value> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| q.get("name").is_none_or(|n| u["name"] == n.as_str()))
        .cloned()
        .collect();
    Json(json!({ "users": list }))
}

fn masked(release: Release, k: &Value) -> Value {
    let mut k = k.clone();
    if release == Release::V0_28 {
        let key = k["key"].as_str().unwrap_or("").to_owned();
        k["key"] = json!(format!("{}-***", &key[..key.len().min(22)]));
    }
    k
}

async fn hs_keys(State(state): Hs, Query(q): Query<HashMap<String, String>>) -> Response {
    let s = state.lock().unwrap();
    let user = q.get("user").cloned();
    if s.release < Release::V0_28 && user.is_none() {
        return gateway(StatusCode::INTERNAL_SERVER_ERROR, 2, "user not found");
    }
    let keys: Vec<Value> = s
        .keys
        .iter()
        .filter(|k| user.as_deref().is_none_or(|u| k["user"]["id"] == u))
        .map(|k| masked(s.release, k))
        .collect();
    Json(json!({ "preAuthKeys": keys })).into_response()
}

async fn hs_create_key(State(state): Hs, Json(body): Json<Value>) -> Response {
    let mut s = state.lock().unwrap();
    let tags: Vec<String> = body["aclTags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = tags.iter().find(|t| !t.starts_with("tag:")) {
        let _ = bad;
        return gateway(
            StatusCode::BAD_REQUEST,
            3,
            "tag must start with the string 'tag:'",
        );
    }
    let user = match &body["user"] {
        Value::String(u) => u.parse::<u64>().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
    .filter(|u| *u != 0);
    let owner = match user {
        Some(1) => Some(
            json!({"id": "1", "name": "alice", "createdAt": "2026-11-01T10:00:00.123456Z",
            "displayName": "", "email": "", "providerId": "", "provider": "", "profilePicUrl": ""}),
        ),
        Some(_) => return gateway(StatusCode::INTERNAL_SERVER_ERROR, 2, "user not found"),
        None if s.release < Release::V0_28 => {
            return gateway(StatusCode::INTERNAL_SERVER_ERROR, 2, "user not found");
        }
        None if tags.is_empty() => {
            return gateway(
                StatusCode::INTERNAL_SERVER_ERROR,
                2,
                "auth-key must be either tagged or owned by user",
            );
        }
        None => None,
    };
    let id = s.next_key;
    s.next_key += 1;
    let key = match s.release {
        Release::V0_28 => format!("hskey-auth-{}-{}", random(12), random(64)),
        _ => random(48),
    };
    let k = json!({
        "user": owner, "id": id.to_string(), "key": key,
        "reusable": body["reusable"].as_bool().unwrap_or(false),
        "ephemeral": body["ephemeral"].as_bool().unwrap_or(false),
        "used": false,
        "expiration": body["expiration"].as_str().unwrap_or("0001-01-01T00:00:00Z"),
        "createdAt": "2026-12-04T10:00:00Z",
        "aclTags": tags,
    });
    s.keys.push(k.clone());
    Json(json!({ "preAuthKey": k })).into_response()
}

async fn hs_policy(State(state): Hs) -> Response {
    let policy = state.lock().unwrap().policy.clone();
    if policy.is_empty() {
        return gateway(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            "loading ACL from database: acl policy not found",
        );
    }
    Json(json!({"policy": policy, "updatedAt": "2026-12-04T09:00:00Z"})).into_response()
}

async fn hs_set_policy(State(state): Hs, Json(body): Json<Value>) -> Response {
    let Some(text) = body["policy"].as_str() else {
        return gateway(StatusCode::BAD_REQUEST, 3, "policy is required");
    };
    if let Err(r) = oshal_mesh::policy::parse(text) {
        return gateway(
            StatusCode::INTERNAL_SERVER_ERROR,
            2,
            &format!("setting policy: {r}"),
        );
    }
    state.lock().unwrap().policy = text.to_owned();
    Json(json!({"policy": text, "updatedAt": "2026-12-04T10:30:00Z"})).into_response()
}

/// `tailscaled`'s LocalAPI on a unix socket of its own.
pub struct Tailscaled {
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
    status: Arc<Mutex<Value>>,
    stop: CancellationToken,
}

impl Drop for Tailscaled {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Tailscaled {
    pub async fn start() -> Result<Tailscaled> {
        let dir = tempfile::tempdir()?;
        let socket = dir.path().join("tailscaled.sock");
        let status = Arc::new(Mutex::new(serde_json::from_str::<Value>(
            oshal_mesh::fixtures::TAILSCALE_STATUS,
        )?));
        let app = Router::new()
            .route("/localapi/v0/status", get(ts_status))
            .with_state(status.clone());
        let listener = tokio::net::UnixListener::bind(&socket)?;
        let stop = serve_until_dropped(listener, app);
        Ok(Tailscaled {
            socket,
            _dir: dir,
            status,
            stop,
        })
    }

    /// Changes what the status answers.
    pub fn edit(&self, f: impl FnOnce(&mut Value)) {
        f(&mut self.status.lock().unwrap());
    }
}

async fn ts_status(State(status): State<Arc<Mutex<Value>>>, headers: HeaderMap) -> Response {
    let host_ok = headers
        .get(header::HOST)
        .is_none_or(|h| h == "local-tailscaled.sock");
    if !host_ok || headers.contains_key(header::ORIGIN) || headers.contains_key(header::REFERER) {
        return (StatusCode::FORBIDDEN, "invalid localapi request\n").into_response();
    }
    Json(status.lock().unwrap().clone()).into_response()
}
