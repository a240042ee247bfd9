//! The production topology's mesh as data: remote nodes as Headscale (the
//! control server) and Tailscale (each host's `tailscaled`) report them,
//! the tailnet policy as a reachability matrix, and a node's enrolment.
//!
//! What lives here, as pure logic in the fields' own vocabulary:
//! - `headscale`: Headscale's REST API read from its own JSON (nodes,
//!   users, pre-auth keys, the policy, `/health`) in the 0.26, 0.27 and
//!   0.28 shapes, told apart by the fields present (`tags` from 0.28,
//!   `forcedTags`/`validTags`/`invalidTags` before); API keys with and
//!   without the `hskey-api-` prefix;
//! - `tailscale`: the LocalAPI's `GET /localapi/v0/status` (`ipnstate.Status`):
//!   the host itself and its peers, direct or relayed, last handshake,
//!   health messages;
//! - `policy`: the tailnet policy (HuJSON: groups, tag owners, hosts,
//!   `acls`) as a reachability matrix of nodes to the fleet's services
//!   (the controller, Redis), and a change checked before it is written;
//! - `enrol`: a new node's pre-auth key request (tagged, single use,
//!   expiring) and the commands that join it and start `oshal node`;
//! - `containers`: a deployment's containers as the container engine
//!   reports them (the Docker Engine API, which Podman serves too): image,
//!   state, health, restarts, compose service or pod;
//! - `health`: the control server's view and the host's merged per node,
//!   with their disagreements flagged; a static list for a mesh with
//!   neither.
//!
//! Every reader is lenient where the sources vary (unknown fields are
//! ignored, `null` is absent, an id may be a string or a number) and strict
//! where they cannot: one malformed node is refused alone, at its JSON
//! path, and the others are kept.
//!
//! The rule of this crate: no I/O and no dependency on the controller, the
//! stores or any adapter (Cargo enforces it; the layering test in
//! `core/cli/tests/layering.rs` checks it). A thin adapter in the platform
//! (`oshal_core::mesh`) reads the live set over HTTP and a unix socket.

pub mod containers;
pub mod enrol;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod headscale;
pub mod health;
pub mod policy;
pub mod tailscale;

use oshal_kernel::clock::UnixMs;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use specta::Type;

/// Bytes of one answer a reader takes (a tailnet of 10,000 nodes is about
/// 20 MB of Headscale's JSON).
pub const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// Nodes (or peers) one answer may list.
pub const MAX_NODES: usize = 100_000;

/// Why a field of an answer, a request or a policy was refused: its JSON
/// path and the reason, with the limit it broke when it broke one.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema, thiserror::Error,
)]
#[serde(rename = "MeshRefusal")]
#[schema(as = MeshRefusal)]
#[error("{path}: {reason}")]
pub struct Refusal {
    /// Where (`nodes[2].ipAddresses[0]`; `body` for the whole answer).
    pub path: String,
    pub reason: String,
    #[specta(type = Option<specta_typescript::Number>)]
    pub limit: Option<u64>,
}

impl Refusal {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
            limit: None,
        }
    }

    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n as u64);
        self
    }
}

/// An answer's bytes as JSON, refused whole (at `body`) if it is too big
/// or not JSON at all.
pub fn json(bytes: &[u8]) -> Result<Value, Refusal> {
    if bytes.len() > MAX_ANSWER {
        return Err(Refusal::new(
            "body",
            format!("is {} bytes; the limit is {MAX_ANSWER}", bytes.len()),
        )
        .limit(MAX_ANSWER));
    }
    serde_json::from_slice(bytes).map_err(|e| Refusal::new("body", format!("not JSON ({e})")))
}

/// `v` as `T`, a refusal naming the field below `path` that did not fit.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(path: &str, v: Value) -> Result<T, Refusal> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = oshal_kernel::text::field_path(&e.path().to_string(), &e.inner().to_string());
        let at = match (path, inner.as_str()) {
            (p, "body") => p.to_owned(),
            ("body", i) => i.to_owned(),
            (p, i) => format!("{p}.{i}"),
        };
        Refusal::new(at, e.inner().to_string())
    })
}

/// An RFC 3339 time as unix ms; Go's zero time (`0001-01-01T00:00:00Z`,
/// "never") and anything before 1970 is `None`.
pub(crate) fn time(path: &str, s: Option<&str>) -> Result<Option<UnixMs>, Refusal> {
    let Some(s) = s.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let t: jiff::Timestamp = s
        .parse()
        .map_err(|e| Refusal::new(path, format!("not an RFC 3339 time ({e})")))?;
    Ok((t.as_second() > 0).then(|| t.as_millisecond()))
}

/// Tailnet addresses as written (`100.64.0.1`, `fd7a:115c:a1e0::1`), each
/// parsed; a CIDR's `/32` or `/128` is taken off.
pub(crate) fn addresses(path: &str, raw: Vec<String>) -> Result<Vec<std::net::IpAddr>, Refusal> {
    raw.iter()
        .enumerate()
        .map(|(i, a)| {
            let bare = a.split('/').next().unwrap_or(a);
            bare.parse().map_err(|_| {
                Refusal::new(
                    format!("{path}[{i}]"),
                    format!("{a:?} is not an IP address"),
                )
            })
        })
        .collect()
}
