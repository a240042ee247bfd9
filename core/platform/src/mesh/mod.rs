//! The mesh's adapter: remote nodes as Headscale and `tailscaled` report
//! them, and the deployment's containers as their engine does, read live,
//! merged by `oshal_mesh`, laid over the fleet.
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
//! over the fleet's services. Beside the mesh, each read shows the rest of
//! the deployment: the API's edge (plain or TLS, the certificate in force
//! and when it expires) and the secret backend (Vault's own health, or the
//! keyring). A source that fails is shown failed, with its own words,
//! beside what the others said; nothing is shown as healthy that was not
//! read.
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
use std::time::{Duration, Instant};

use futures::StreamExt;
use oshal_mesh::enrol::{Enrolled, Enrolment, Joining};
use oshal_mesh::headscale::{self, KeyInfo, Shape};
use oshal_mesh::health::{self, MeshNode, NodeStatus};
use oshal_mesh::policy::{self, Before, PolicyCheck, Service, Subject};
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
/// How long one source may take in a read before it is called unreachable.
pub const READ_WITHIN: Duration = Duration::from_secs(8);
/// Containers one read inspects (for restarts and health).
pub const MAX_INSPECTED: usize = 200;
/// The Host the engine's API is asked with (any will do).
const ENGINE_HOST: &str = "docker";
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
    /// A static list: where it was read from and its JSON (read once, at
    /// start, by the shell).
    pub static_list: Option<(String, Value)>,
    /// The container engine's API socket (`/run/podman/podman.sock`,
    /// `/var/run/docker.sock`).
    pub containers_socket: Option<PathBuf>,
    /// The fleet's services the policy matrix is drawn against.
    pub services: Vec<Service>,
    /// The fleet's Redis as a node reaches it over the mesh (what
    /// enrolment prints).
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    /// The port a round trip is measured to.
    pub probe_port: u16,
    /// The API's listener, kept current by the server (the topology's
    /// edge).
    pub edge: crate::tls::Edge,
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

/// The mesh, read live (requests that arrive during a read share it; a
/// static list is what was read at start).
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
    /// Which stored key is in force (bumped by each store) and whether
    /// Headscale refused it: a refused key is not sent again until another
    /// is stored, and a refusal of an older key never latches a newer one.
    key_state: std::sync::Mutex<KeyState>,
    /// The last read and when it ended: one read at a time, and requests
    /// that waited for it take its answer.
    last: tokio::sync::Mutex<Option<(Instant, MeshView)>>,
}

/// The stored key's generation and whether Headscale refused it.
#[derive(Debug, Default)]
struct KeyState {
    generation: u64,
    refused: bool,
}

/// A refusal of an answer's shape: the source's fault, not the caller's.
fn upstream(r: Refusal) -> MeshError {
    MeshError::Source(Failure::Malformed(r))
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
                key_state: std::sync::Mutex::new(KeyState::default()),
                last: tokio::sync::Mutex::new(None),
            }),
        })
    }

    fn configured(&self) -> bool {
        let o = &self.inner.options;
        o.headscale_url.is_some()
            || o.tailscale_socket.is_some()
            || o.static_list.is_some()
            || o.containers_socket.is_some()
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
        {
            let mut k = self.key_state();
            k.generation += 1;
            k.refused = false;
        }
        *self.inner.last.lock().await = None;
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
        let generation = {
            let k = self.key_state();
            if k.refused {
                return Err(MeshError::Source(Failure::Unauthorized(
                    "refused before; store another key (oshal mesh key FILE)".into(),
                )));
            }
            k.generation
        };
        let key = self.key().await?;
        let out = hs.call(&key, method, path, query, body).await;
        if let Err(Failure::Unauthorized(_)) = &out {
            let mut k = self.key_state();
            if k.generation == generation && !k.refused {
                k.refused = true;
                tracing::warn!(
                    "Headscale refused the API key; it is not sent again until another is stored"
                );
            }
        }
        out.map_err(MeshError::Source)
    }

    fn key_state(&self) -> std::sync::MutexGuard<'_, KeyState> {
        self.inner
            .key_state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The mesh now. One read runs at a time, and a request that waited
    /// for one is answered by it (it ended after the request was made), so
    /// surfaces polling together cost one read.
    pub async fn read(&self) -> MeshView {
        let asked = Instant::now();
        let mut last = self.inner.last.lock().await;
        if let Some((ended, view)) = last.as_ref()
            && *ended >= asked
        {
            return view.clone();
        }
        let view = self.read_now().await;
        *last = Some((Instant::now(), view.clone()));
        view
    }

    async fn read_now(&self) -> MeshView {
        let controller = &self.inner.controller;
        let now = controller.clock().now_ms();
        let mut view = MeshView {
            configured: self.configured(),
            ..MeshView::unconfigured(now)
        };
        let o = &self.inner.options;
        let secrets = async {
            match controller.connectors() {
                Some(c) => Some(c.broker().backend_health().await),
                None => None,
            }
        };
        view.edge = o.edge.view();
        let (control, local, containers, secrets) = tokio::join!(
            within(
                SourceKind::Headscale,
                self.inner.headscale.as_ref().map(|h| h.url().to_owned()),
                self.read_control()
            ),
            within(
                SourceKind::Tailscale,
                o.tailscale_socket.as_ref().map(|p| p.display().to_string()),
                self.read_local()
            ),
            within(
                SourceKind::Containers,
                o.containers_socket
                    .as_ref()
                    .map(|p| p.display().to_string()),
                self.read_containers()
            ),
            secrets,
        );
        view.secrets = secrets;
        if let Some((source, (list, refused))) = containers {
            view.sources.push(source);
            view.containers = list;
            view.refused.extend(refused);
        }
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
                    view.refused
                        .extend(refused.into_iter().map(|r| prefixed("static", r)));
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
        let mut source = SourceView::answering(SourceKind::Headscale, hs.url().to_owned());
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
        headscale::pre_auth_keys(body).map_err(upstream)
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
        let (users, _) = headscale::users(body).map_err(upstream)?;
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
        let mut source = SourceView::answering(SourceKind::Tailscale, socket.display().to_string());
        let status = match sources::local_api(socket, "/localapi/v0/status").await {
            Ok(body) => match tailscale::status(body) {
                Ok(s) => {
                    source.version = Some(s.version.clone()).filter(|v| !v.is_empty());
                    if !s.running() {
                        source.state = SourceState::Down;
                        source.message = Some(format!(
                            "tailscaled is {}: what it says of its peers is stale",
                            s.backend_state
                        ));
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

    /// The engine's containers, each inspected for its restarts and health
    /// (at most [`MAX_INSPECTED`], eight at a time).
    async fn read_containers(
        &self,
    ) -> Option<(
        SourceView,
        (Vec<oshal_mesh::containers::Container>, Vec<Refusal>),
    )> {
        use oshal_mesh::containers;
        let socket = self.inner.options.containers_socket.as_ref()?;
        let started = Instant::now();
        let mut source =
            SourceView::answering(SourceKind::Containers, socket.display().to_string());
        let (mut list, mut refused) = (Vec::new(), Vec::new());
        match sources::unix_get(socket, ENGINE_HOST, "/containers/json?all=true").await {
            Ok(body) => match containers::list(body) {
                Ok((l, r)) => {
                    list = l;
                    refused = r.into_iter().map(|r| prefixed("containers", r)).collect();
                }
                Err(r) => {
                    source.state = SourceState::Malformed;
                    source.message = Some(r.to_string());
                }
            },
            Err(e) => {
                source.state = state_of_failure(&e);
                source.message = Some(format!("the container engine {e}"));
            }
        }
        let paths: Vec<(usize, String)> = list
            .iter()
            .enumerate()
            .take(MAX_INSPECTED)
            .map(|(i, c)| (i, format!("/containers/{}/json", c.id)))
            .collect();
        let inspected: Vec<(usize, Result<Value, Failure>)> = futures::stream::iter(paths)
            .map(
                |(i, path)| async move { (i, sources::unix_get(socket, ENGINE_HOST, &path).await) },
            )
            .buffer_unordered(8)
            .collect()
            .await;
        for (i, answer) in inspected {
            let at = |r: Refusal| Refusal::new(format!("containers[{i}].{}", r.path), r.reason);
            match answer {
                Ok(body) => {
                    if let Err(r) = containers::inspected(&mut list[i], &body) {
                        refused.push(at(r));
                    }
                }
                // Gone between the list and its inspection: nothing to say.
                Err(Failure::Failed { status: 404, .. }) => {}
                Err(e) => refused.push(Refusal::new(format!("containers[{i}]"), e.to_string())),
            }
        }
        source.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        Some((source, (list, refused)))
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
        let key = headscale::pre_auth_key(answer).map_err(upstream)?;
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
        // What is in force: a policy, none (all allowed), or unknown.
        let (text, none) = match self.call(reqwest::Method::GET, "/policy", &[], None).await {
            Ok(body) => match headscale::policy(body) {
                Ok((text, _)) if text.trim().is_empty() => (None, true),
                Ok((text, _)) => (Some(text), false),
                Err(_) => (None, false),
            },
            // Headscale's database mode with nothing stored yet.
            Err(MeshError::Source(Failure::Failed { message, .. }))
                if message.contains("policy not found") =>
            {
                (None, true)
            }
            Err(e @ (MeshError::NoKey | MeshError::Source(Failure::Unauthorized(_)))) => {
                return Err(e);
            }
            Err(_) => (None, false),
        };
        let parsed = text.as_deref().and_then(|t| policy::parse(t).ok());
        let before = match (&parsed, none) {
            (Some(p), _) => Before::Policy(p),
            (None, true) => Before::AllowAll,
            (None, false) => Before::Unknown,
        };
        let body = self.call(reqwest::Method::GET, "/node", &[], None).await?;
        let nodes = headscale::nodes(body).map_err(upstream)?;
        let now = self.inner.controller.clock().now_ms();
        let merged = health::merge(&nodes.nodes, None, now);
        policy::check(
            before,
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
        // Written (2xx): an echo this reader does not follow changes nothing.
        if let Err(r) = headscale::policy(answer) {
            tracing::warn!(refused = %r, "Headscale's answer to the policy write was not in its shape");
        }
        tracing::info!(
            turned = check.turned.len(),
            cuts = check.cuts,
            "tailnet policy written"
        );
        Ok(check)
    }
}

/// A source's read within [`READ_WITHIN`]; past it, the source is
/// unreachable (and what it would have said, nothing).
async fn within<T: Default>(
    kind: SourceKind,
    at: Option<String>,
    read: impl std::future::Future<Output = Option<(SourceView, T)>>,
) -> Option<(SourceView, T)> {
    let at = at?;
    match tokio::time::timeout(READ_WITHIN, read).await {
        Ok(answer) => answer,
        Err(_) => Some((
            SourceView {
                kind,
                at,
                state: SourceState::Unreachable,
                version: None,
                message: Some(format!("no answer within {READ_WITHIN:?}")),
                took_ms: READ_WITHIN.as_secs_f64() * 1000.0,
            },
            T::default(),
        )),
    }
}

/// A refusal's path under the list it came from (`containers[2].Id`).
fn prefixed(list: &str, r: Refusal) -> Refusal {
    Refusal {
        path: format!("{list}{}", r.path),
        ..r
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
