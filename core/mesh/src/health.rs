//! A node's health as one record: what the control server says (online,
//! last seen, tags, routes, key expiry) merged with what this host's
//! `tailscaled` says of it (online, direct or relayed, last handshake),
//! joined by node key (else by address), with their disagreements
//! flagged rather than one silently preferred. A static list stands in
//! for a mesh with neither: its nodes' health is what the app measures.

use std::collections::BTreeSet;
use std::net::IpAddr;

use oshal_kernel::clock::UnixMs;
use serde::{Deserialize, Serialize};
use specta::Type;

use crate::headscale::ControlNode;
use crate::tailscale::{LocalStatus, Path, Peer};
use crate::{Refusal, addresses, typed};

/// A handshake newer than this is a live link (WireGuard handshakes at
/// least every two minutes while traffic flows).
pub const FRESH_HANDSHAKE_MS: i64 = 3 * 60_000;

/// What the merge concludes of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Online,
    Offline,
    /// Its node key expired: it must log in again.
    Expired,
    /// Nothing says either way.
    Unknown,
}

/// The control server's facts of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ControlFacts {
    #[specta(type = specta_typescript::Number)]
    pub id: u64,
    pub user: Option<String>,
    pub online: Option<bool>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub last_seen_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub expiry_ms: Option<UnixMs>,
    pub tags: Vec<String>,
    pub approved_routes: Vec<String>,
    pub available_routes: Vec<String>,
}

/// This host's facts of a node (or of itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct LocalFacts {
    /// The node is this host.
    pub is_self: bool,
    pub online: bool,
    pub path: Path,
    #[specta(type = Option<specta_typescript::Number>)]
    pub last_handshake_ms: Option<UnixMs>,
    pub tags: Vec<String>,
    pub in_network_map: bool,
}

/// Where two sources part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Disagreement {
    /// The control server says online; this host's peer entry says not.
    ControlOnlineLocalOffline,
    /// The control server says offline; this host handshook with it
    /// `age_ms` ago.
    ControlOfflineLocalHandshake {
        #[specta(type = specta_typescript::Number)]
        age_ms: i64,
    },
    /// The two list different tags.
    TagsDiffer {
        control: Vec<String>,
        local: Vec<String>,
    },
    /// The control server lists it; this host's network map does not.
    MissingLocally,
    /// This host knows a peer the control server does not list.
    UnknownToControl,
}

/// One node, merged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct MeshNode {
    pub name: String,
    pub node_key: Option<String>,
    #[schema(value_type = Vec<String>)]
    #[specta(type = Vec<String>)]
    pub addresses: Vec<IpAddr>,
    pub tags: Vec<String>,
    pub status: NodeStatus,
    pub control: Option<ControlFacts>,
    pub local: Option<LocalFacts>,
    /// Round trip the app measured to the node, when it could.
    pub latency_ms: Option<f64>,
    /// Live bots of the Oshal node of this name, as the controller knows
    /// them (`None`: no Oshal node of that name).
    pub bots: Option<u32>,
    pub disagreements: Vec<Disagreement>,
}

/// A node of a static list (`[{"name", "addresses", "tags"}]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaticNode {
    pub name: String,
    pub addresses: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A static list's nodes; a malformed one is refused alone.
pub fn static_list(body: serde_json::Value) -> Result<(Vec<MeshNode>, Vec<Refusal>), Refusal> {
    let serde_json::Value::Array(items) = body else {
        return Err(Refusal::new("body", "must be a JSON array of nodes"));
    };
    if items.len() > crate::MAX_NODES {
        return Err(Refusal::new(
            "body",
            format!(
                "holds {} nodes; the limit is {}",
                items.len(),
                crate::MAX_NODES
            ),
        )
        .limit(crate::MAX_NODES));
    }
    let (mut nodes, mut refused) = (Vec::new(), Vec::new());
    for (i, v) in items.into_iter().enumerate() {
        let path = format!("[{i}]");
        let node = typed::<StaticNode>(&path, v).and_then(|n| {
            if n.name.is_empty() || n.name.len() > 253 {
                return Err(Refusal::new(format!("{path}.name"), "is 1..=253 bytes").limit(253));
            }
            Ok(MeshNode {
                addresses: addresses(&format!("{path}.addresses"), n.addresses)?,
                name: n.name,
                node_key: None,
                tags: n.tags,
                status: NodeStatus::Unknown,
                control: None,
                local: None,
                latency_ms: None,
                bots: None,
                disagreements: Vec::new(),
            })
        });
        match node {
            Ok(n) => nodes.push(n),
            Err(r) => refused.push(r),
        }
    }
    Ok((nodes, refused))
}

fn local_facts(p: &Peer, is_self: bool, running: bool) -> LocalFacts {
    LocalFacts {
        is_self,
        online: if is_self { running } else { p.online },
        path: p.path.clone(),
        last_handshake_ms: p.last_handshake_ms,
        tags: p.tags.clone(),
        in_network_map: p.in_network_map,
    }
}

/// The control server's nodes and this host's peers as one list (the
/// control server's order, then peers it does not list).
pub fn merge(control: &[ControlNode], local: Option<&LocalStatus>, now: UnixMs) -> Vec<MeshNode> {
    let running = local.is_some_and(LocalStatus::running);
    let mut peers: Vec<(&Peer, bool)> = local
        .map(|l| {
            l.host
                .iter()
                .map(|h| (h, true))
                .chain(l.peers.iter().map(|p| (p, false)))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::with_capacity(control.len() + peers.len());
    for c in control {
        let at = peers.iter().position(|(p, _)| {
            p.node_key == c.node_key
                || (c.node_key.is_empty() && p.addresses.iter().any(|a| c.addresses.contains(a)))
        });
        let seen = at.map(|i| peers.swap_remove(i));
        let facts = ControlFacts {
            id: c.id,
            user: c.user.clone(),
            online: c.online,
            last_seen_ms: c.last_seen_ms,
            expiry_ms: c.expiry_ms,
            tags: c.tags.clone(),
            approved_routes: c.approved_routes.clone(),
            available_routes: c.available_routes.clone(),
        };
        let seen = seen.map(|(p, me)| local_facts(p, me, running));
        let mut node = MeshNode {
            name: if c.given_name.is_empty() {
                c.name.clone()
            } else {
                c.given_name.clone()
            },
            node_key: (!c.node_key.is_empty()).then(|| c.node_key.clone()),
            addresses: c.addresses.clone(),
            tags: c.tags.clone(),
            status: NodeStatus::Unknown,
            control: Some(facts),
            local: seen,
            latency_ms: None,
            bots: None,
            disagreements: Vec::new(),
        };
        judge(&mut node, running, now);
        out.push(node);
    }
    for (p, me) in peers {
        let mut node = MeshNode {
            name: if p.host_name.is_empty() {
                p.dns_name.clone()
            } else {
                p.host_name.clone()
            },
            node_key: Some(p.node_key.clone()),
            addresses: p.addresses.clone(),
            tags: p.tags.clone(),
            status: NodeStatus::Unknown,
            control: None,
            local: Some(local_facts(p, me, running)),
            latency_ms: None,
            bots: None,
            disagreements: Vec::new(),
        };
        judge(&mut node, running, now);
        out.push(node);
    }
    out
}

/// The node's status and disagreements from its facts. `running`: this
/// host's tailscaled is up, so what it says is evidence (a node missing
/// from it is missing); a stopped or logged-out daemon's peers and
/// handshakes are stale and say nothing.
fn judge(n: &mut MeshNode, running: bool, now: UnixMs) {
    let fresh = n
        .local
        .as_ref()
        .and_then(|l| l.last_handshake_ms)
        .map(|t| now - t);
    let heard = n.local.as_ref().filter(|_| running);
    let local_live =
        heard.is_some_and(|l| l.online || fresh.is_some_and(|a| a <= FRESH_HANDSHAKE_MS));
    if let Some(c) = &n.control {
        if running && n.local.is_none() {
            n.disagreements.push(Disagreement::MissingLocally);
        }
        if let Some(l) = heard {
            if c.online == Some(true) && !l.online && !l.is_self {
                n.disagreements
                    .push(Disagreement::ControlOnlineLocalOffline);
            }
            if let (Some(false), Some(age)) = (c.online, fresh)
                && age <= FRESH_HANDSHAKE_MS
            {
                n.disagreements
                    .push(Disagreement::ControlOfflineLocalHandshake { age_ms: age });
            }
            let a: BTreeSet<_> = c.tags.iter().collect();
            let b: BTreeSet<_> = l.tags.iter().collect();
            if !l.is_self && a != b {
                n.disagreements.push(Disagreement::TagsDiffer {
                    control: c.tags.clone(),
                    local: l.tags.clone(),
                });
            }
        }
        n.status = if c.expiry_ms.is_some_and(|e| e <= now) {
            NodeStatus::Expired
        } else if local_live || c.online == Some(true) {
            NodeStatus::Online
        } else if c.online == Some(false) {
            NodeStatus::Offline
        } else {
            NodeStatus::Unknown
        };
    } else if let Some(l) = &n.local {
        if running && !l.is_self {
            n.disagreements.push(Disagreement::UnknownToControl);
        }
        n.status = match (running, local_live) {
            (false, _) => NodeStatus::Unknown,
            (true, true) => NodeStatus::Online,
            (true, false) => NodeStatus::Offline,
        };
    }
}

/// A node the app could (or could not) reach: a measured round trip makes
/// a node whose status nobody knew online.
pub fn measured(n: &mut MeshNode, latency_ms: Option<f64>) {
    n.latency_ms = latency_ms;
    if n.status == NodeStatus::Unknown && latency_ms.is_some() {
        n.status = NodeStatus::Online;
    }
}

#[cfg(test)]
mod tests;
