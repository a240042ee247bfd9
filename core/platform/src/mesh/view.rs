//! The mesh routes' types: what `GET /api/v1/mesh` answers, and the
//! bodies of enrolment and policy changes.

use oshal_kernel::clock::UnixMs;
use oshal_mesh::Refusal;
use oshal_mesh::headscale::KeyInfo;
use oshal_mesh::health::MeshNode;
use oshal_mesh::policy::Matrix;
use serde::{Deserialize, Serialize};
use specta::Type;

/// Where the mesh is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Headscale's REST API (the control server).
    Headscale,
    /// `tailscaled`'s LocalAPI on this host.
    Tailscale,
    /// A static list of nodes.
    Static,
    /// The container engine's API (Docker's; Podman serves it too).
    Containers,
}

/// How a source answered this read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    Ok,
    /// No API key is stored for it (`oshal mesh key`).
    NoKey,
    /// It refused the key (401/403): not asked again until a key is
    /// stored.
    Unauthorized,
    /// It could not be reached, or did not answer in time.
    Unreachable,
    /// It answered with an error status.
    Failed,
    /// It answers but is not up (tailscaled stopped or logged out): what it
    /// says is stale.
    Down,
    /// Its answer was not in its documented shape.
    Malformed,
}

/// One source as this read found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct SourceView {
    pub kind: SourceKind,
    /// Its URL or socket path (never a key).
    pub at: String,
    pub state: SourceState,
    /// Its release, when it says or its shape tells.
    pub version: Option<String>,
    /// What went wrong, in its words.
    pub message: Option<String>,
    /// How long the read took.
    pub took_ms: f64,
}

impl SourceView {
    /// A source about to be read, well until it says otherwise.
    pub fn answering(kind: SourceKind, at: String) -> Self {
        Self {
            kind,
            at,
            state: SourceState::Ok,
            version: None,
            message: None,
            took_ms: 0.0,
        }
    }
}

/// The mesh as one read found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct MeshView {
    /// Whether any source is configured (`oshal serve --headscale-url`,
    /// `--tailscale-socket`, `--mesh-static`, `--containers-socket`).
    pub configured: bool,
    #[specta(type = specta_typescript::Number)]
    pub read_ms: UnixMs,
    pub sources: Vec<SourceView>,
    pub nodes: Vec<MeshNode>,
    /// Nodes, peers and keys refused, each alone.
    pub refused: Vec<Refusal>,
    /// The pre-auth keys Headscale lists (never a key itself): an expired
    /// or used one is said so, not tried.
    pub keys: Vec<KeyInfo>,
    /// `tailscaled`'s own health messages on this host.
    pub host_health: Vec<String>,
    /// The deployment's containers, when an engine is read.
    pub containers: Vec<oshal_mesh::containers::Container>,
    /// The policy as a reachability matrix, when it was read.
    pub matrix: Option<Matrix>,
    /// Why the policy could not be read into a matrix.
    pub policy_refused: Option<Refusal>,
    /// The API's listener: plain or TLS, and the certificate in force
    /// (`None`: this controller serves no HTTP, as in the desktop app).
    pub edge: Option<crate::tls::EdgeView>,
    /// The secret backend (the OS keyring, or Vault as it says of itself;
    /// `None`: no connectors, so no backend).
    pub secrets: Option<crate::connector::broker::BackendHealth>,
}

impl MeshView {
    /// What a controller that reads no mesh answers.
    pub fn unconfigured(read_ms: UnixMs) -> Self {
        Self {
            configured: false,
            read_ms,
            sources: Vec::new(),
            nodes: Vec::new(),
            refused: Vec::new(),
            keys: Vec::new(),
            host_health: Vec::new(),
            containers: Vec::new(),
            matrix: None,
            policy_refused: None,
            edge: None,
            secrets: None,
        }
    }
}

/// A policy to check or write (HuJSON text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    /// The policy's HuJSON text (at most 1 MiB).
    #[schema(max_length = 1048576, pattern = "^[^\\u0000]*$")]
    pub policy: String,
    /// Write it although it cuts a node off a service it reaches today.
    #[serde(default)]
    pub confirm: bool,
}

/// A stored Headscale API key (sent once, kept in the secret backend).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeshKey {
    /// `hskey-api-…` (0.28) or `PREFIX.SECRET` (before).
    #[schema(
        max_length = 512,
        pattern = "^(hskey-api-[A-Za-z0-9_-]+|[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+)$"
    )]
    pub api_key: String,
}

impl std::fmt::Debug for MeshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeshKey(***)")
    }
}
