//! The tailnet policy (Headscale's and Tailscale's HuJSON: `groups`,
//! `tagOwners`, `hosts`, `acls`) as a reachability matrix: which node may
//! reach each of the fleet's services (the controller's API, Redis), and
//! by which rule. A change is checked before it is written: every name it
//! uses resolves, and what it opens and cuts is listed cell by cell.
//!
//! The rules are read as Tailscale reads them: default deny; an `accept`
//! rule lets each `src` reach each `dst` (`target:ports`); a tagged node
//! has given up its user's identity (a user or `group:` matches only
//! untagged nodes; `autogroup:member` is the untagged, `autogroup:tagged`
//! the tagged). Other sections (`ssh`, `tests`, `autoApprovers`,
//! `grants`) are not read into the matrix; `grants` is reported, since it
//! can open what the matrix does not show.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use specta::Type;

use crate::{Refusal, typed};

/// Bytes of a policy document.
pub const MAX_POLICY: usize = 1024 * 1024;
/// Rules one policy may hold.
pub const MAX_RULES: usize = 10_000;

/// A node as a policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Subject {
    pub name: String,
    /// Its user's name (`alice`, or `alice@example.com`), when it has one.
    pub user: Option<String>,
    pub tags: Vec<String>,
    #[schema(value_type = Vec<String>)]
    #[specta(type = Vec<String>)]
    pub addresses: Vec<IpAddr>,
}

/// One of the fleet's services a node must reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Service {
    /// `controller`, `redis`.
    pub name: String,
    #[schema(value_type = String)]
    #[specta(type = String)]
    pub address: IpAddr,
    pub port: u16,
}

/// A parsed policy: the parts the matrix reads.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    pub groups: BTreeMap<String, Vec<String>>,
    pub tag_owners: BTreeMap<String, Vec<String>>,
    pub hosts: BTreeMap<String, IpNet>,
    pub rules: Vec<Rule>,
    /// The policy has `grants`, which the matrix does not evaluate.
    pub has_grants: bool,
}

/// One `acls` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub accept: bool,
    pub src: Vec<String>,
    pub dst: Vec<Dst>,
}

/// One `dst` entry: a target and its ports.
#[derive(Debug, Clone, PartialEq)]
pub struct Dst {
    pub target: String,
    pub ports: Ports,
}

/// The ports a `dst` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Ports {
    Any,
    Ranges(Vec<(u16, u16)>),
}

impl Ports {
    fn contains(&self, port: u16) -> bool {
        match self {
            Self::Any => true,
            Self::Ranges(r) => r.iter().any(|&(lo, hi)| (lo..=hi).contains(&port)),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPolicy {
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    tag_owners: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    hosts: BTreeMap<String, String>,
    #[serde(default)]
    acls: Vec<Value>,
    #[serde(default)]
    grants: Option<Value>,
}

#[derive(Deserialize)]
struct RawRule {
    action: String,
    src: Vec<String>,
    dst: Vec<String>,
}

/// A policy from its HuJSON text (JSON with comments and trailing commas).
/// Every name a rule uses must resolve: a `group:` in `groups`, a `tag:`
/// in `tagOwners`, a bare name in `hosts`.
pub fn parse(text: &str) -> Result<Policy, Refusal> {
    if text.len() > MAX_POLICY {
        return Err(Refusal::new(
            "policy",
            format!("is {} bytes; the limit is {MAX_POLICY}", text.len()),
        )
        .limit(MAX_POLICY));
    }
    let v: Value =
        json5::from_str(text).map_err(|e| Refusal::new("policy", format!("not HuJSON ({e})")))?;
    let Value::Object(top) = v else {
        return Err(Refusal::new("policy", "must be a JSON object"));
    };
    // Headscale reads the top-level keys without regard to case.
    let mut keyed = serde_json::Map::new();
    for (k, v) in top {
        let canonical = match k.to_ascii_lowercase().as_str() {
            "groups" => "groups",
            "tagowners" => "tagOwners",
            "hosts" => "hosts",
            "acls" => "acls",
            "grants" => "grants",
            _ => {
                keyed.insert(k, v);
                continue;
            }
        };
        if keyed.insert(canonical.to_owned(), v).is_some() {
            return Err(Refusal::new(
                canonical,
                format!("{canonical} is given twice (keys are read without regard to case)"),
            ));
        }
    }
    let raw: RawPolicy = typed("body", Value::Object(keyed))?;
    if raw.acls.len() > MAX_RULES {
        return Err(Refusal::new(
            "acls",
            format!("holds {} rules; the limit is {MAX_RULES}", raw.acls.len()),
        )
        .limit(MAX_RULES));
    }
    let mut p = Policy {
        has_grants: raw.grants.is_some_and(|g| !g.is_null()),
        ..Policy::default()
    };
    for (name, members) in raw.groups {
        if !name.starts_with("group:") {
            return Err(Refusal::new(
                format!("groups.{name}"),
                "a group's name starts with \"group:\"",
            ));
        }
        p.groups.insert(name, members);
    }
    for (tag, owners) in raw.tag_owners {
        check_tag(&format!("tagOwners.{tag}"), &tag)?;
        p.tag_owners.insert(tag, owners);
    }
    for (name, addr) in raw.hosts {
        let net = net(&addr).ok_or_else(|| {
            Refusal::new(
                format!("hosts.{name}"),
                format!("{addr:?} is not an IP address or prefix"),
            )
        })?;
        p.hosts.insert(name, net);
    }
    for (i, v) in raw.acls.into_iter().enumerate() {
        let path = format!("acls[{i}]");
        let r: RawRule = typed(&path, v)?;
        let accept = match r.action.as_str() {
            "accept" => true,
            other => {
                return Err(Refusal::new(
                    format!("{path}.action"),
                    format!("{other:?} is not an action; \"accept\" is the only one"),
                ));
            }
        };
        for (j, s) in r.src.iter().enumerate() {
            let at = format!("{path}.src[{j}]");
            if s == "autogroup:internet" {
                return Err(Refusal::new(at, "autogroup:internet is a destination only"));
            }
            p.check_target(&at, s)?;
        }
        let mut dst = Vec::with_capacity(r.dst.len());
        for (j, d) in r.dst.iter().enumerate() {
            let at = format!("{path}.dst[{j}]");
            let (target, ports) = split_dst(&at, d)?;
            p.check_target(&at, &target)?;
            dst.push(Dst { target, ports });
        }
        p.rules.push(Rule {
            accept,
            src: r.src,
            dst,
        });
    }
    Ok(p)
}

fn check_tag(path: &str, tag: &str) -> Result<(), Refusal> {
    let name = tag.strip_prefix("tag:").unwrap_or("");
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Refusal::new(
            path,
            format!("{tag:?} is not a tag (tag:NAME, NAME of 1..=63 letters, digits, - or _)"),
        )
        .limit(63))
    }
}

fn net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// `tag:web:80,443` → (`tag:web`, 80 and 443); `[fd7a::1]:22`; `*:*`.
fn split_dst(path: &str, d: &str) -> Result<(String, Ports), Refusal> {
    let (target, ports) = if let Some(rest) = d.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or_else(|| Refusal::new(path, format!("{d:?} opens [ without closing it")))?;
        (ip.to_owned(), after.strip_prefix(':').unwrap_or(""))
    } else {
        match d.rsplit_once(':') {
            Some((t, p)) => (t.to_owned(), p),
            None => (d.to_owned(), ""),
        }
    };
    if ports.is_empty() {
        return Err(Refusal::new(
            path,
            format!("{d:?} names no ports (target:ports, ports * or 80,443 or 1000-2000)"),
        ));
    }
    if ports == "*" {
        return Ok((target, Ports::Any));
    }
    let mut ranges = Vec::new();
    for part in ports.split(',') {
        let bad = || Refusal::new(path, format!("{part:?} is not a port or a range (1-65535)"));
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
            None => {
                let p = part.parse().map_err(|_| bad())?;
                (p, p)
            }
        };
        if lo == 0 || lo > hi {
            return Err(bad());
        }
        ranges.push((lo, hi));
    }
    Ok((target, Ports::Ranges(ranges)))
}

impl Policy {
    fn check_target(&self, path: &str, t: &str) -> Result<(), Refusal> {
        let known = match t {
            "*" | "autogroup:member" | "autogroup:tagged" | "autogroup:internet" => true,
            _ if t.starts_with("tag:") => {
                check_tag(path, t)?;
                if !self.tag_owners.contains_key(t) {
                    return Err(Refusal::new(
                        path,
                        format!("{t} has no entry in tagOwners, so no node can carry it"),
                    ));
                }
                true
            }
            _ if t.starts_with("group:") => {
                if !self.groups.contains_key(t) {
                    return Err(Refusal::new(path, format!("{t} is not defined in groups")));
                }
                true
            }
            _ if t.starts_with("autogroup:") => {
                return Err(Refusal::new(
                    path,
                    format!(
                        "{t} is not read here (autogroup:member, autogroup:tagged, autogroup:internet are)"
                    ),
                ));
            }
            _ => t.contains('@') || self.hosts.contains_key(t) || net(t).is_some(),
        };
        if known {
            Ok(())
        } else {
            Err(Refusal::new(
                path,
                format!("{t:?} is not a tag, group, user (name@), host in hosts or address"),
            ))
        }
    }

    /// `who` (a node, and its addresses) is matched by the target `t`.
    fn matches(&self, t: &str, who: Option<&Subject>, address: Option<IpAddr>) -> bool {
        let tagged = who.is_some_and(|w| !w.tags.is_empty());
        let has_address = |net: &IpNet| {
            address.is_some_and(|a| net.contains(&a))
                || who.is_some_and(|w| w.addresses.iter().any(|a| net.contains(a)))
        };
        match t {
            "*" => true,
            "autogroup:member" => who.is_some() && !tagged,
            "autogroup:tagged" => tagged,
            "autogroup:internet" => false,
            _ if t.starts_with("tag:") => who.is_some_and(|w| w.tags.iter().any(|x| x == t)),
            _ if t.starts_with("group:") => {
                !tagged
                    && self
                        .groups
                        .get(t)
                        .is_some_and(|members| members.iter().any(|m| user_is(who, m)))
            }
            _ if t.contains('@') => !tagged && user_is(who, t),
            _ => self
                .hosts
                .get(t)
                .copied()
                .or_else(|| net(t))
                .is_some_and(|n| has_address(&n)),
        }
    }

    /// The first accept rule that lets `node` reach `service`; the node
    /// holding the service's address is looked up in `nodes`.
    pub fn allows(&self, node: &Subject, service: &Service, nodes: &[Subject]) -> Option<usize> {
        let host = nodes
            .iter()
            .find(|n| n.addresses.contains(&service.address));
        self.rules.iter().position(|r| {
            r.accept
                && r.src.iter().any(|s| self.matches(s, Some(node), None))
                && r.dst.iter().any(|d| {
                    d.ports.contains(service.port)
                        && self.matches(&d.target, host, Some(service.address))
                })
        })
    }

    /// Each node against each service.
    pub fn matrix(&self, nodes: &[Subject], services: &[Service]) -> Matrix {
        Matrix {
            services: services.to_vec(),
            rows: nodes
                .iter()
                .map(|n| Row {
                    node: n.name.clone(),
                    cells: services
                        .iter()
                        .map(|s| Cell {
                            rule: self.allows(n, s, nodes).map(|i| i as u32),
                        })
                        .collect(),
                })
                .collect(),
            grants_not_evaluated: self.has_grants,
        }
    }
}

/// `member` names `who`'s user: `alice@` the user named `alice`,
/// `alice@example.com` the user by that very name or email; nothing else
/// is a user (a bare word is a host).
fn user_is(who: Option<&Subject>, member: &str) -> bool {
    let Some(user) = who.and_then(|w| w.user.as_deref()) else {
        return false;
    };
    match member.split_once('@') {
        Some((name, "")) => user == name,
        Some(_) => user == member,
        None => false,
    }
}

/// Which node reaches which service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Matrix {
    pub services: Vec<Service>,
    pub rows: Vec<Row>,
    /// The policy has `grants`, which may open more than these cells show.
    pub grants_not_evaluated: bool,
}

/// One node's cells, in the services' order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Row {
    pub node: String,
    pub cells: Vec<Cell>,
}

/// Reachable when a rule lets it (the rule's index in `acls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Cell {
    pub rule: Option<u32>,
}

impl Cell {
    pub fn allowed(self) -> bool {
        self.rule.is_some()
    }
}

/// One cell a change turns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Turned {
    pub node: String,
    pub service: String,
    /// Reachable after the change.
    pub now: bool,
}

/// What is known of the policy in force, which a change is held against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Before<'a> {
    /// Read and parsed.
    Policy(&'a Policy),
    /// None is stored: the control server lets every node reach every
    /// other (Headscale and Tailscale without a policy allow all).
    AllowAll,
    /// It could not be read or parsed, or it has `grants`, which the matrix
    /// does not evaluate: every cell the change closes may be a cut.
    Unknown,
}

/// What the check knew of the policy in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BeforeKind {
    Policy,
    AllowAll,
    Unknown,
}

/// A policy change, checked before it is written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct PolicyCheck {
    /// The new policy's matrix.
    pub matrix: Matrix,
    /// What the cells were held against: the policy in force, none (all
    /// allowed), or one that could not be known (every cell counted as
    /// reachable, so each one closed counts as a cut).
    pub before: BeforeKind,
    /// Cells it opens or cuts.
    pub turned: Vec<Turned>,
    /// Nodes it cuts off a service they reach today (or may reach, when
    /// the policy in force is unknown): writing it needs a confirmation.
    pub cuts: u32,
}

/// `next` against what is known of the policy in force, over the live
/// nodes: refused at the field if it does not parse or names what does not
/// exist.
pub fn check(
    current: Before<'_>,
    next: &str,
    nodes: &[Subject],
    services: &[Service],
) -> Result<PolicyCheck, Refusal> {
    let next = parse(next)?;
    let matrix = next.matrix(nodes, services);
    let (before, kind) = match current {
        Before::Policy(p) if !p.has_grants => (Some(p.matrix(nodes, services)), BeforeKind::Policy),
        Before::Policy(_) | Before::Unknown => (None, BeforeKind::Unknown),
        Before::AllowAll => (None, BeforeKind::AllowAll),
    };
    let mut turned = Vec::new();
    for (r, row) in matrix.rows.iter().enumerate() {
        for (c, cell) in row.cells.iter().enumerate() {
            let was = before.as_ref().is_none_or(|b| b.rows[r].cells[c].allowed());
            if was != cell.allowed() {
                turned.push(Turned {
                    node: row.node.clone(),
                    service: matrix.services[c].name.clone(),
                    now: cell.allowed(),
                });
            }
        }
    }
    let cuts = turned
        .iter()
        .filter(|t| !t.now)
        .map(|t| t.node.as_str())
        .collect::<BTreeSet<_>>()
        .len() as u32;
    Ok(PolicyCheck {
        matrix,
        before: kind,
        turned,
        cuts,
    })
}

#[cfg(test)]
mod tests;
