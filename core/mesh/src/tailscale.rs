//! The Tailscale LocalAPI's `GET /localapi/v0/status` (`ipnstate.Status`),
//! as `tailscaled` answers it over its unix socket (Host
//! `local-tailscaled.sock`): the host itself (`Self`), its peers (`Peer`,
//! keyed by node key), its health messages (`Health`) and its state
//! (`BackendState`).
//!
//! A peer's path is read as `tailscale status` reads it: only a peer sent
//! to lately (`Active`) has one; then `CurAddr` (an `ip:port`) is direct,
//! `PeerRelay` a peer relay, and neither the peer's home DERP region
//! (`Relay`, which is always set and so says nothing alone). Go's zero
//! time means never; every field but `PublicKey` may be missing (older
//! daemons omit the newer ones).

use std::collections::BTreeMap;
use std::net::IpAddr;

use oshal_kernel::clock::UnixMs;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use specta::Type;

use crate::{MAX_NODES, Refusal, addresses, time, typed};

/// How a peer's packets go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Path {
    /// Straight to an endpoint (`CurAddr`, `ip:port`).
    Direct { endpoint: String },
    /// Through another peer acting as a relay (`PeerRelay`,
    /// `ip:port:vni:N`).
    PeerRelay { endpoint: String },
    /// Through the DERP relay of a region (`Relay`'s code).
    Relayed { region: String },
    /// Nothing sent to it lately (`Active` false): no path to tell.
    Idle,
}

/// One host as the LocalAPI reports it (the host itself or a peer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename = "TailscalePeer")]
#[schema(as = TailscalePeer)]
pub struct Peer {
    /// The stable node id (`ID`, `n…CNTRL`).
    pub id: String,
    /// `nodekey:…`, the key Headscale lists as the node's `nodeKey`.
    pub node_key: String,
    pub host_name: String,
    /// The MagicDNS name (`host.tailnet.`), empty when none.
    pub dns_name: String,
    pub os: String,
    #[schema(value_type = Vec<String>)]
    #[specta(type = Vec<String>)]
    pub addresses: Vec<IpAddr>,
    pub tags: Vec<String>,
    /// The user's login name (from the status's `User` map), when known.
    pub user: Option<String>,
    /// The control server's word as the host heard it (`false` when it
    /// said nothing).
    pub online: bool,
    pub path: Path,
    #[specta(type = Option<specta_typescript::Number>)]
    pub last_handshake_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub last_seen_ms: Option<UnixMs>,
    #[specta(type = specta_typescript::Number)]
    pub rx_bytes: u64,
    #[specta(type = specta_typescript::Number)]
    pub tx_bytes: u64,
    /// In the host's network map (a peer the control server still sends).
    pub in_network_map: bool,
    #[specta(type = Option<specta_typescript::Number>)]
    pub key_expiry_ms: Option<UnixMs>,
}

/// What `tailscaled` on one host says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct LocalStatus {
    pub version: String,
    /// `Running`, `NeedsLogin`, `NeedsMachineAuth`, `Stopped`, `Starting`,
    /// `NoState`, as tailscaled writes it.
    pub backend_state: String,
    /// The tailnet's name, when the host is in one.
    pub tailnet: Option<String>,
    /// The host's own health warnings (`Health`), as written.
    pub health: Vec<String>,
    pub host: Option<Peer>,
    pub peers: Vec<Peer>,
    /// Peers refused, each alone, at its path.
    pub refused: Vec<Refusal>,
}

impl LocalStatus {
    /// The host is up in its tailnet.
    pub fn running(&self) -> bool {
        self.backend_state == "Running"
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawStatus {
    #[serde(default)]
    version: Option<String>,
    backend_state: String,
    #[serde(default)]
    health: Option<Vec<String>>,
    #[serde(default)]
    current_tailnet: Option<RawTailnet>,
    #[serde(default, rename = "Self")]
    host: Option<Value>,
    #[serde(default)]
    peer: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    user: Option<BTreeMap<String, RawProfile>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawProfile {
    #[serde(default)]
    login_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawTailnet {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawPeer {
    #[serde(default, rename = "ID")]
    id: Option<String>,
    public_key: String,
    #[serde(default)]
    host_name: Option<String>,
    #[serde(default, rename = "DNSName")]
    dns_name: Option<String>,
    #[serde(default, rename = "OS")]
    os: Option<String>,
    #[serde(default, rename = "TailscaleIPs")]
    tailscale_ips: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default, rename = "UserID")]
    user_id: Option<i64>,
    #[serde(default)]
    online: Option<bool>,
    #[serde(default)]
    cur_addr: Option<String>,
    #[serde(default)]
    relay: Option<String>,
    #[serde(default)]
    peer_relay: Option<String>,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    last_handshake: Option<String>,
    #[serde(default)]
    last_seen: Option<String>,
    #[serde(default)]
    rx_bytes: Option<u64>,
    #[serde(default)]
    tx_bytes: Option<u64>,
    #[serde(default)]
    in_network_map: Option<bool>,
    #[serde(default)]
    key_expiry: Option<String>,
}

/// The LocalAPI's status answer. The document's own shape (`BackendState`
/// missing, `Peer` not a map) refuses it whole; a malformed peer is refused
/// alone and the others are kept.
pub fn status(body: Value) -> Result<LocalStatus, Refusal> {
    if !body.is_object() {
        return Err(Refusal::new("body", "must be a JSON object"));
    }
    let raw: RawStatus = typed("body", body)?;
    let peers_raw = raw.peer.unwrap_or_default();
    if peers_raw.len() > MAX_NODES {
        return Err(Refusal::new(
            "Peer",
            format!("holds {} peers; the limit is {MAX_NODES}", peers_raw.len()),
        )
        .limit(MAX_NODES));
    }
    let users: BTreeMap<String, String> = raw
        .user
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(id, p)| p.login_name.filter(|n| !n.is_empty()).map(|n| (id, n)))
        .collect();
    let host = raw.host.map(|v| peer("Self", v, &users)).transpose()?;
    let mut out = LocalStatus {
        version: raw.version.unwrap_or_default(),
        backend_state: raw.backend_state,
        tailnet: raw
            .current_tailnet
            .and_then(|t| t.name)
            .filter(|n| !n.is_empty()),
        health: raw.health.unwrap_or_default(),
        host,
        peers: Vec::with_capacity(peers_raw.len()),
        refused: Vec::new(),
    };
    for (key, v) in peers_raw {
        match peer(&format!("Peer[{key:?}]"), v, &users) {
            Ok(p) => out.peers.push(p),
            Err(r) => out.refused.push(r),
        }
    }
    Ok(out)
}

fn peer(path: &str, v: Value, users: &BTreeMap<String, String>) -> Result<Peer, Refusal> {
    let p: RawPeer = typed(path, v)?;
    if !p.public_key.starts_with("nodekey:") {
        return Err(Refusal::new(
            format!("{path}.PublicKey"),
            format!("{:?} is not a node key (nodekey:…)", p.public_key),
        ));
    }
    let cur = p.cur_addr.unwrap_or_default();
    let peer_relay = p.peer_relay.unwrap_or_default();
    let relay = p.relay.unwrap_or_default();
    let path_taken = if !p.active.unwrap_or(false) {
        Path::Idle
    } else if !cur.is_empty() {
        Path::Direct { endpoint: cur }
    } else if !peer_relay.is_empty() {
        Path::PeerRelay {
            endpoint: peer_relay,
        }
    } else if !relay.is_empty() {
        Path::Relayed { region: relay }
    } else {
        Path::Idle
    };
    Ok(Peer {
        id: p.id.unwrap_or_default(),
        node_key: p.public_key,
        host_name: p.host_name.unwrap_or_default(),
        dns_name: p.dns_name.unwrap_or_default(),
        os: p.os.unwrap_or_default(),
        addresses: addresses(
            &format!("{path}.TailscaleIPs"),
            p.tailscale_ips.unwrap_or_default(),
        )?,
        user: p.user_id.and_then(|id| users.get(&id.to_string()).cloned()),
        tags: p.tags.unwrap_or_default(),
        online: p.online.unwrap_or(false),
        path: path_taken,
        last_handshake_ms: time(
            &format!("{path}.LastHandshake"),
            p.last_handshake.as_deref(),
        )?,
        last_seen_ms: time(&format!("{path}.LastSeen"), p.last_seen.as_deref())?,
        rx_bytes: p.rx_bytes.unwrap_or(0),
        tx_bytes: p.tx_bytes.unwrap_or(0),
        in_network_map: p.in_network_map.unwrap_or(true),
        key_expiry_ms: time(&format!("{path}.KeyExpiry"), p.key_expiry.as_deref())?,
    })
}

#[cfg(test)]
mod tests;
