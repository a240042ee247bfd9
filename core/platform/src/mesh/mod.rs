//! The mesh's adapter: remote nodes as Headscale and `tailscaled` report
//! them, read live, merged by `oshal_mesh`, laid over the fleet.
//!
//! `Mesh` is the facade the API holds. A read asks every configured
//! source at once (Headscale's nodes, pre-auth keys and policy; the
//! LocalAPI's status; or a static list), merges them per node
//! (`oshal_mesh::health`), measures each reachable node's round trip
//! (a TCP handshake to `probe_port`, accepted or refused, within a
//! second; at most [`MAX_PROBES`] nodes; a reset counts as the host's
//! answer, so a firewall on the way that resets for it makes it look
//! reachable), counts the live bots of the
//! Oshal node of each name, and draws the policy's reachability matrix
//! over the fleet's services. A source that fails is shown failed, with
//! its own words, beside what the others said; nothing is shown as
//! healthy that was not read.
//!
//! The Headscale API key is one of the platform's own credentials, kept
//! by the connector broker's secret backend (the OS keyring, or Vault) at
//! `platform/headscale`, stored through the API and never returned. A key
//! the server refuses (401/403) is not sent again until another is
//! stored. Enrolment mints a single-use, tagged, expiring pre-auth key and
//! prints the commands that use it; the key is shown once and kept
//! nowhere. A policy change is checked against the live nodes before it
//! is written, and one that cuts a node off a service it reaches today is
//! written only when confirmed.

mod sources;
pub mod view;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use oshal_mesh::enrol::{Enrolled, Enrolment, Joining};
use oshal_mesh::headscale::{self, KeyInfo, Shape};
use oshal_mesh::health::{self, MeshNode, NodeStatus};
use oshal_mesh::policy::{self, PolicyCheck, Service, Subject};
use oshal_mesh::{Refusal, tailscale};
use serde_json::{Value, json};

use crate::connector::broker::Secret;
use crate::controller::Controller;
pub use sources::Failure;
use sources::Headscale;
pub use view::{MeshKey, MeshView, PolicyChange, SourceKind, SourceState, SourceView};

/// The name the Headscale API key is kept under (`platform/headscale`).
pub const KEY_NAME: &str = "headscale";
/// Nodes one read measures a round trip to.
pub const MAX_PROBES: usize = 256;
/// How long a round trip may take before the node is called unmeasured.
pub const PROBE_WITHIN: Duration = Duration::from_secs(1);

/// What the mesh is read from; made by a shell from its flags.
#[derive(Debug, Clone, Default)]
pub struct MeshOptions {
    /// Headscale's root URL.
    pub headscale_url: Option<String>,
    /// The Headscale user a node's key is minted for (0.26 and 0.27 need
    /// one; 0.28 takes a tagged key without).
    pub headscale_user: Option<String>,
    /// `tailscaled`'s LocalAPI socket on this host.
    pub tailscale_socket: Option<PathBuf>,
    /// A static list: where it was read from and its JSON.
    pub static_list: Option<(String, Value)>,
    /// The fleet's services the policy matrix is drawn against.
    pub services: Vec<Service>,
    /// The fleet's Redis as a node reaches it over the mesh (what
    /// enrolment prints).
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    /// The port a round trip is measured to.
    pub probe_port: u16,
}

/// What a mesh request could not do.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("no {0} is configured on this controller")]
    NotConfigured(&'static str),
    #[error("no Headscale API key is stored (oshal mesh key FILE)")]
    NoKey,
    #[error("Headscale {0}")]
    Source(Failure),
    #[error(
        "the policy cuts {cuts} node(s) off a service they reach today; send it again with confirm to write it"
    )]
    NeedsConfirm { cuts: u32 },
    #[error("secret backend: {0}")]
    Backend(String),
}

/// The mesh, read live on each call.
#[derive(Clone)]
pub struct Mesh {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh").finish_non_exhaustive()
    }
}

struct Inner {
    options: MeshOptions,
    headscale: Option<Headscale>,
    controller: Controller,
    /// Headscale refused the stored key: not sent again until another is
    /// stored.
    key_refused: AtomicBool,
}

/// What Headscale said in one read.
#[derive(Default)]
struct ControlRead {
    nodes: Vec<oshal_mesh::headscale::ControlNode>,
    keys: Vec<KeyInfo>,
    policy: Option<Result<String, Refusal>>,
    refused: Vec<Refusal>,
}

impl Mesh {
    /// Checks the options (the URL, the services); reads nothing yet.
    pub fn new(options: MeshOptions, controller: Controller) -> Result<Self, MeshError> {
        let headscale = options
            .headscale_url
            .as_deref()
            .map(Headscale::new)
            .transpose()
            .map_err(MeshError::Refused)?;
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                headscale,
                controller,
                key_refused: AtomicBool::new(false),
            }),
        })
    }

    fn configured(&self) -> bool {
        let o = &self.inner.options;
        o.headscale_url.is_some() || o.tailscale_socket.is_some() || o.static_list.is_some()
    }

    async fn key(&self) -> Result<Secret, MeshError> {
        let connectors = self
            .inner
            .controller
            .connectors()
            .ok_or(MeshError::NotConfigured("secret backend"))?;
        connectors
            .broker()
            .platform_secret(KEY_NAME)
            .await
            .map_err(|e| MeshError::Backend(e.to_string()))?
            .ok_or(MeshError::NoKey)
    }

    /// Stores the Headscale API key (checked for its form first).
    pub async fn store_key(&self, key: MeshKey) -> Result<(), MeshError> {
        headscale::check_api_key(&key.api_key).map_err(MeshError::Refused)?;
        let connectors = self
            .inner
            .controller
            .connectors()
            .ok_or(MeshError::NotConfigured("secret backend"))?;
        connectors
            .broker()
            .store_platform_secret(KEY_NAME, &Secret::new(key.api_key))
            .await
            .map_err(|e| MeshError::Backend(e.to_string()))?;
        self.inner.key_refused.store(false, Ordering::SeqCst);
        tracing::info!("Headscale API key stored");
        Ok(())
    }

    /// A Headscale call with the stored key; a refused key is remembered.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, MeshError> {
        let hs = self
            .inner
            .headscale
            .as_ref()
            .ok_or(MeshError::NotConfigured("Headscale (--headscale-url)"))?;
        if self.inner.key_refused.load(Ordering::SeqCst) {
            return Err(MeshError::Source(Failure::Unauthorized(
                "refused before; store another key (oshal mesh key FILE)".into(),
            )));
        }
        let key = self.key().await?;
        let out = hs.call(&key, method, path, query, body).await;
        if let Err(Failure::Unauthorized(_)) = &out {
            self.inner.key_refused.store(true, Ordering::SeqCst);
            tracing::warn!(
                "Headscale refused the API key; it is not sent again until another is stored"
            );
        }
        out.map_err(MeshError::Source)
    }

    /// The mesh now.
    pub async fn read(&self) -> MeshView {
        let controller = &self.inner.controller;
        let now = controller.clock().now_ms();
        let mut view = MeshView {
            configured: self.configured(),
            ..MeshView::unconfigured(now)
        };
        let (control, local) = tokio::join!(self.read_control(), self.read_local());
        let mut policy_text = None;
        let control_nodes = match control {
            Some((source, read)) => {
                view.sources.push(source);
                view.keys = read.keys;
                view.refused.extend(read.refused);
                policy_text = read.policy;
                read.nodes
            }
            None => Vec::new(),
        };
        let status = match local {
            Some((source, status)) => {
                view.sources.push(source);
                status
            }
            None => None,
        };
        if let Some(s) = &status {
            view.host_health = s.health.clone();
            view.refused.extend(s.refused.iter().cloned());
        }
        view.nodes = health::merge(&control_nodes, status.as_ref(), now);
        if let Some((at, body)) = &self.inner.options.static_list {
            let started = Instant::now();
            let (state, message) = match health::static_list(body.clone()) {
                Ok((nodes, refused)) => {
                    view.nodes.extend(nodes);
                    view.refused.extend(refused);
                    (SourceState::Ok, None)
                }
                Err(r) => (SourceState::Malformed, Some(r.to_string())),
            };
            view.sources.push(SourceView {
                kind: SourceKind::Static,
                at: at.clone(),
                state,
                version: None,
                message,
                took_ms: started.elapsed().as_secs_f64() * 1000.0,
            });
        }
        self.measure(&mut view.nodes).await;
        self.overlay_bots(&mut view.nodes).await;
        match policy_text {
            Some(Ok(text)) => match policy::parse(&text) {
                Ok(p) => {
                    view.matrix =
                        Some(p.matrix(&subjects(&view.nodes), &self.inner.options.services));
                }
                Err(r) => view.policy_refused = Some(r),
            },
            Some(Err(r)) => view.policy_refused = Some(r),
            None => {}
        }
        view
    }

    async fn read_control(&self) -> Option<(SourceView, ControlRead)> {
        let hs = self.inner.headscale.as_ref()?;
        let started = Instant::now();
        let mut source = SourceView {
            kind: SourceKind::Headscale,
            at: hs.url().to_owned(),
            state: SourceState::Ok,
            version: None,
            message: None,
            took_ms: 0.0,
        };
        let mut read = ControlRead::default();
        let get = reqwest::Method::GET;
        let (version, nodes, policy_answer) = tokio::join!(
            hs.version(),
            self.call(get.clone(), "/node", &[], None),
            self.call(get.clone(), "/policy", &[], None),
        );
        match nodes {
            Ok(body) => match headscale::nodes(body) {
                Ok(list) => {
                    let shape = list.shape.unwrap_or(Shape::Unknown);
                    source.version = Some(headscale::release(version.as_deref(), shape));
                    read.nodes = list.nodes;
                    read.refused = list.refused;
                }
                Err(r) => {
                    source.state = SourceState::Malformed;
                    source.message = Some(r.to_string());
                }
            },
            Err(e) => {
                (source.state, source.message) = state_of(&e);
                source.version = version;
            }
        }
        if source.state == SourceState::Ok {
            read.policy = Some(match policy_answer {
                Ok(body) => headscale::policy(body).map(|(text, _)| text),
                Err(e) => Err(Refusal::new("policy", e.to_string())),
            });
            match self.keys().await {
                Ok((keys, refused)) => {
                    let now = self.inner.controller.clock().now_ms();
                    read.keys = keys.iter().map(|k| k.info(now)).collect();
                    read.refused.extend(refused);
                }
                Err(e) => read
                    .refused
                    .push(Refusal::new("preAuthKeys", e.to_string())),
            }
        }
        source.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        Some((source, read))
    }

    /// The pre-auth keys: all of them (0.28), else the configured user's.
    async fn keys(&self) -> Result<(Vec<headscale::PreAuthKey>, Vec<Refusal>), MeshError> {
        let get = reqwest::Method::GET;
        let body = match self.call(get.clone(), "/preauthkey", &[], None).await {
            Ok(body) => body,
            Err(MeshError::Source(Failure::Failed { .. }))
                if self.inner.options.headscale_user.is_some() =>
            {
                let user = self.user_id().await?;
                let query = [("user", user.unwrap_or_default().to_string())];
                self.call(get, "/preauthkey", &query, None).await?
            }
            Err(e) => return Err(e),
        };
        headscale::pre_auth_keys(body).map_err(MeshError::Refused)
    }

    /// The configured user's id, when one is configured.
    async fn user_id(&self) -> Result<Option<u64>, MeshError> {
        let Some(name) = self.inner.options.headscale_user.clone() else {
            return Ok(None);
        };
        let body = self
            .call(
                reqwest::Method::GET,
                "/user",
                &[("name", name.clone())],
                None,
            )
            .await?;
        let (users, _) = headscale::users(body).map_err(MeshError::Refused)?;
        users
            .into_iter()
            .find(|u| u.name == name)
            .map(|u| Some(u.id))
            .ok_or_else(|| {
                MeshError::Refused(Refusal::new(
                    "headscale_user",
                    format!("Headscale has no user {name:?}"),
                ))
            })
    }

    async fn read_local(&self) -> Option<(SourceView, Option<tailscale::LocalStatus>)> {
        let socket = self.inner.options.tailscale_socket.as_ref()?;
        let started = Instant::now();
        let mut source = SourceView {
            kind: SourceKind::Tailscale,
            at: socket.display().to_string(),
            state: SourceState::Ok,
            version: None,
            message: None,
            took_ms: 0.0,
        };
        let status = match sources::local_api(socket, "/localapi/v0/status").await {
            Ok(body) => match tailscale::status(body) {
                Ok(s) => {
                    source.version = Some(s.version.clone()).filter(|v| !v.is_empty());
                    if !s.running() {
                        source.message = Some(format!("tailscaled is {}", s.backend_state));
                    }
                    Some(s)
                }
                Err(r) => {
                    source.state = SourceState::Malformed;
                    source.message = Some(r.to_string());
                    None
                }
            },
            Err(e) => {
                source.state = state_of_failure(&e);
                source.message = Some(format!("tailscaled {e}"));
                None
            }
        };
        source.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        Some((source, status))
    }

    /// Round trips to the nodes that may be up, at most [`MAX_PROBES`].
    async fn measure(&self, nodes: &mut [MeshNode]) {
        let port = self.inner.options.probe_port;
        if port == 0 {
            return;
        }
        let targets: Vec<(usize, std::net::SocketAddr)> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !matches!(n.status, NodeStatus::Offline | NodeStatus::Expired))
            .filter(|(_, n)| !n.local.as_ref().is_some_and(|l| l.is_self))
            .filter_map(|(i, n)| {
                let ip = n
                    .addresses
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(n.addresses.first())?;
                Some((i, std::net::SocketAddr::new(*ip, port)))
            })
            .take(MAX_PROBES)
            .collect();
        let measured: Vec<(usize, Option<f64>)> = futures::stream::iter(targets)
            .map(|(i, addr)| async move { (i, sources::round_trip(addr, PROBE_WITHIN).await) })
            .buffer_unordered(64)
            .collect()
            .await;
        for (i, rtt) in measured {
            health::measured(&mut nodes[i], rtt);
        }
    }

    async fn overlay_bots(&self, nodes: &mut [MeshNode]) {
        let mut live: BTreeMap<String, u32> = BTreeMap::new();
        for b in self.inner.controller.bots().await {
            if let Some(node) = b.node {
                *live.entry(node).or_default() += u32::from(b.live);
            }
        }
        for n in nodes {
            n.bots = live.get(&n.name).copied();
        }
    }

    /// Mints a single-use, tagged, expiring pre-auth key for a new node and
    /// gives the commands that join it.
    pub async fn enrol(&self, e: Enrolment) -> Result<Enrolled, MeshError> {
        let e = e.checked().map_err(MeshError::Refused)?;
        let hs = self
            .inner
            .headscale
            .as_ref()
            .ok_or(MeshError::NotConfigured("Headscale (--headscale-url)"))?;
        let redis_url = self
            .inner
            .options
            .redis_url
            .clone()
            .ok_or(MeshError::NotConfigured(
                "mesh Redis URL (--mesh-redis-url)",
            ))?;
        let user = self.user_id().await?;
        let now = self.inner.controller.clock().now_ms();
        let expires_ms = now + i64::from(e.expires_in_s.unwrap_or(3600)) * 1000;
        let body = headscale::key_request(user, &e.tags, expires_ms);
        let answer = self
            .call(reqwest::Method::POST, "/preauthkey", &[], Some(&body))
            .await?;
        let key = headscale::pre_auth_key(answer).map_err(MeshError::Refused)?;
        let expires_ms = key.expiration_ms.unwrap_or(expires_ms);
        tracing::info!(node = %e.name, tags = ?e.tags, key_id = ?key.id, "pre-auth key minted for a new node");
        Ok(oshal_mesh::enrol::enrolled(
            &e,
            key.key,
            expires_ms,
            &Joining {
                login_server: hs.url(),
                redis_url: &redis_url,
                redis_prefix: &self.inner.options.redis_prefix,
            },
        ))
    }

    /// `change` checked against the live nodes and the policy in force.
    pub async fn check_policy(&self, change: &PolicyChange) -> Result<PolicyCheck, MeshError> {
        let current = self
            .call(reqwest::Method::GET, "/policy", &[], None)
            .await
            .ok()
            .and_then(|b| headscale::policy(b).ok())
            .and_then(|(text, _)| policy::parse(&text).ok());
        let body = self.call(reqwest::Method::GET, "/node", &[], None).await?;
        let nodes = headscale::nodes(body).map_err(MeshError::Refused)?;
        let now = self.inner.controller.clock().now_ms();
        let merged = health::merge(&nodes.nodes, None, now);
        policy::check(
            current.as_ref(),
            &change.policy,
            &subjects(&merged),
            &self.inner.options.services,
        )
        .map_err(MeshError::Refused)
    }

    /// Writes `change` once checked; one that cuts a node off a service
    /// needs `confirm`.
    pub async fn set_policy(&self, change: PolicyChange) -> Result<PolicyCheck, MeshError> {
        let check = self.check_policy(&change).await?;
        if check.cuts > 0 && !change.confirm {
            return Err(MeshError::NeedsConfirm { cuts: check.cuts });
        }
        let answer = self
            .call(
                reqwest::Method::PUT,
                "/policy",
                &[],
                Some(&json!({ "policy": change.policy })),
            )
            .await?;
        headscale::policy(answer).map_err(MeshError::Refused)?;
        tracing::info!(
            turned = check.turned.len(),
            cuts = check.cuts,
            "tailnet policy written"
        );
        Ok(check)
    }
}

fn state_of_failure(f: &Failure) -> SourceState {
    match f {
        Failure::Unauthorized(_) => SourceState::Unauthorized,
        Failure::Unreachable(_) => SourceState::Unreachable,
        Failure::Malformed(_) => SourceState::Malformed,
        Failure::Failed { .. } => SourceState::Failed,
    }
}

fn state_of(e: &MeshError) -> (SourceState, Option<String>) {
    let state = match e {
        MeshError::NoKey => SourceState::NoKey,
        MeshError::Source(f) => state_of_failure(f),
        MeshError::Refused(_) => SourceState::Malformed,
        _ => SourceState::Failed,
    };
    (state, Some(e.to_string()))
}

fn subjects(nodes: &[MeshNode]) -> Vec<Subject> {
    nodes
        .iter()
        .map(|n| Subject {
            name: n.name.clone(),
            user: n.control.as_ref().and_then(|c| c.user.clone()),
            tags: n.tags.clone(),
            addresses: n.addresses.clone(),
        })
        .collect()
}
