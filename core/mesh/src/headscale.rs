//! Headscale's REST API (its gRPC gateway: protobuf's lowerCamelCase
//! names, 64-bit ids as JSON strings, RFC 3339 times) as Oshal reads it:
//! `GET /api/v1/node`, `GET /api/v1/user`, `POST /api/v1/preauthkey`,
//! `GET`/`PUT /api/v1/policy` and `GET /health`.
//!
//! Three shapes are read. 0.26 and 0.27 list a node's tags in three
//! fields (`forcedTags`, set by an admin; `validTags`, advertised and
//! allowed by `tagOwners`; `invalidTags`, advertised and refused); 0.28
//! lists the node's effective tags once, as `tags`. Which shape a server
//! speaks is told by the fields its nodes carry ([`Shape`]), since the
//! answer names no version. A pre-auth key is asked for by the user's id
//! (0.26 on; a name before), and from 0.28 may carry tags alone.

use std::net::IpAddr;

use oshal_kernel::clock::UnixMs;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use specta::Type;

use crate::{MAX_NODES, Refusal, addresses, time, typed};

/// Which node shape a server answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// `forcedTags`, `validTags`, `invalidTags` (0.26, 0.27).
    SplitTags,
    /// `tags` (0.28 on).
    Tags,
    /// No node to tell by.
    Unknown,
}

/// A node as Headscale lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ControlNode {
    #[specta(type = specta_typescript::Number)]
    pub id: u64,
    /// The host name the node registered with.
    pub name: String,
    /// The name in the tailnet (MagicDNS), which an admin may change.
    pub given_name: String,
    /// `nodekey:…`, as `tailscaled` lists its peers.
    pub node_key: String,
    pub user: Option<String>,
    #[schema(value_type = Vec<String>)]
    #[specta(type = Vec<String>)]
    pub addresses: Vec<IpAddr>,
    /// The node's effective tags: 0.28's `tags`, or `forcedTags` and
    /// `validTags` before (never `invalidTags`).
    pub tags: Vec<String>,
    /// Tags the node advertised and the policy refused (before 0.28).
    pub invalid_tags: Vec<String>,
    /// `None` when the server does not say.
    pub online: Option<bool>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub last_seen_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub expiry_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub created_ms: Option<UnixMs>,
    /// `REGISTER_METHOD_AUTH_KEY`, `…_CLI`, `…_OIDC`, as written.
    pub register_method: String,
    pub approved_routes: Vec<String>,
    pub available_routes: Vec<String>,
}

/// A list of nodes, the malformed ones refused each alone.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nodes {
    pub shape: Option<Shape>,
    pub nodes: Vec<ControlNode>,
    pub refused: Vec<Refusal>,
}

#[derive(Deserialize)]
struct RawList {
    #[serde(default)]
    nodes: Option<Vec<Value>>,
}

/// A uint64 the gateway writes as a string (or, leniently, a number).
#[derive(Deserialize)]
#[serde(untagged)]
enum Id {
    Text(String),
    Number(u64),
}

impl Id {
    fn get(self, path: &str) -> Result<u64, Refusal> {
        match self {
            Self::Number(n) => Ok(n),
            Self::Text(s) => s
                .parse()
                .map_err(|_| Refusal::new(path, format!("{s:?} is not an unsigned 64-bit id"))),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawNode {
    id: Id,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    given_name: Option<String>,
    #[serde(default)]
    node_key: Option<String>,
    #[serde(default)]
    user: Option<RawUser>,
    #[serde(default)]
    ip_addresses: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    forced_tags: Option<Vec<String>>,
    #[serde(default)]
    valid_tags: Option<Vec<String>>,
    #[serde(default)]
    invalid_tags: Option<Vec<String>>,
    #[serde(default)]
    online: Option<bool>,
    #[serde(default)]
    last_seen: Option<String>,
    #[serde(default)]
    expiry: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    register_method: Option<String>,
    #[serde(default)]
    approved_routes: Option<Vec<String>>,
    #[serde(default)]
    available_routes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawUser {
    #[serde(default)]
    id: Option<Id>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

/// `GET /api/v1/node`'s answer.
pub fn nodes(body: Value) -> Result<Nodes, Refusal> {
    if !body.is_object() {
        return Err(Refusal::new("body", "must be a JSON object"));
    }
    let raw: RawList = typed("body", body)?;
    let items = raw.nodes.unwrap_or_default();
    if items.len() > MAX_NODES {
        return Err(Refusal::new(
            "nodes",
            format!("holds {} nodes; the limit is {MAX_NODES}", items.len()),
        )
        .limit(MAX_NODES));
    }
    let mut out = Nodes::default();
    for (i, v) in items.into_iter().enumerate() {
        let path = format!("nodes[{i}]");
        let shape = match &v {
            Value::Object(o) if o.contains_key("tags") => Shape::Tags,
            Value::Object(o)
                if ["forcedTags", "validTags", "invalidTags"]
                    .iter()
                    .any(|k| o.contains_key(*k)) =>
            {
                Shape::SplitTags
            }
            _ => Shape::Unknown,
        };
        if shape != Shape::Unknown {
            match out.shape {
                None | Some(Shape::Unknown) => out.shape = Some(shape),
                Some(s) if s != shape => {
                    out.refused.push(Refusal::new(
                        &path,
                        "lists its tags in the other shape than the nodes before it",
                    ));
                    continue;
                }
                Some(_) => {}
            }
        }
        match node(&path, v) {
            Ok(n) => out.nodes.push(n),
            Err(r) => out.refused.push(r),
        }
    }
    if out.shape.is_none() {
        out.shape = Some(Shape::Unknown);
    }
    Ok(out)
}

fn node(path: &str, v: Value) -> Result<ControlNode, Refusal> {
    let n: RawNode = typed(path, v)?;
    let id = n.id.get(&format!("{path}.id"))?;
    let node_key = n.node_key.unwrap_or_default();
    if !node_key.is_empty() && !node_key.starts_with("nodekey:") {
        return Err(Refusal::new(
            format!("{path}.nodeKey"),
            format!("{node_key:?} is not a node key (nodekey:…)"),
        ));
    }
    let mut tags = n.tags.unwrap_or_default();
    for t in n.forced_tags.into_iter().chain(n.valid_tags).flatten() {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let name = n.name.unwrap_or_default();
    if name.is_empty() && n.given_name.as_deref().unwrap_or("").is_empty() {
        return Err(Refusal::new(
            format!("{path}.name"),
            "is empty, as is givenName",
        ));
    }
    Ok(ControlNode {
        id,
        given_name: n.given_name.unwrap_or_default(),
        name,
        node_key,
        user: n.user.and_then(user_name),
        addresses: addresses(
            &format!("{path}.ipAddresses"),
            n.ip_addresses.unwrap_or_default(),
        )?,
        tags,
        invalid_tags: n.invalid_tags.unwrap_or_default(),
        online: n.online,
        last_seen_ms: time(&format!("{path}.lastSeen"), n.last_seen.as_deref())?,
        expiry_ms: time(&format!("{path}.expiry"), n.expiry.as_deref())?,
        created_ms: time(&format!("{path}.createdAt"), n.created_at.as_deref())?,
        register_method: n.register_method.unwrap_or_default(),
        approved_routes: n.approved_routes.unwrap_or_default(),
        available_routes: n.available_routes.unwrap_or_default(),
    })
}

/// The id 0.28 lists a tagged node's owner under (`tagged-devices`): a
/// tagged node has no user.
pub const TAGGED_DEVICES: u64 = 2_147_455_555;

fn user_name(u: RawUser) -> Option<String> {
    if matches!(u.id, Some(Id::Number(TAGGED_DEVICES)))
        || matches!(&u.id, Some(Id::Text(s)) if s == "2147455555")
    {
        return None;
    }
    [u.name, u.email, u.display_name]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
}

/// A user as Headscale lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename = "HeadscaleUser")]
#[schema(as = HeadscaleUser)]
pub struct User {
    #[specta(type = specta_typescript::Number)]
    pub id: u64,
    pub name: String,
}

/// `GET /api/v1/user`'s answer; a user without an id is refused alone.
pub fn users(body: Value) -> Result<(Vec<User>, Vec<Refusal>), Refusal> {
    #[derive(Deserialize)]
    struct List {
        #[serde(default)]
        users: Option<Vec<Value>>,
    }
    if !body.is_object() {
        return Err(Refusal::new("body", "must be a JSON object"));
    }
    let list: List = typed("body", body)?;
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    for (i, v) in list.users.unwrap_or_default().into_iter().enumerate() {
        let path = format!("users[{i}]");
        let user = typed::<RawUser>(&path, v).and_then(|u| {
            let id =
                u.id.ok_or_else(|| Refusal::new(format!("{path}.id"), "is missing"))?
                    .get(&format!("{path}.id"))?;
            let name = user_name(RawUser { id: None, ..u }).unwrap_or_default();
            Ok(User { id, name })
        });
        match user {
            Ok(u) => ok.push(u),
            Err(r) => refused.push(r),
        }
    }
    Ok((ok, refused))
}

/// A pre-auth key request: single use, not ephemeral, tagged, expiring at
/// `expires_ms`. `user` is the owner's id; 0.28 takes a tagged key with
/// none.
pub fn key_request(user: Option<u64>, tags: &[String], expires_ms: UnixMs) -> Value {
    let expiration = jiff::Timestamp::from_millisecond(expires_ms)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut body = json!({
        "reusable": false,
        "ephemeral": false,
        "expiration": expiration,
        "aclTags": tags,
    });
    if let Some(user) = user {
        body["user"] = Value::String(user.to_string());
    }
    body
}

/// A pre-auth key as Headscale answers it. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq)]
pub struct PreAuthKey {
    pub id: Option<u64>,
    pub key: String,
    pub reusable: bool,
    pub used: bool,
    pub expiration_ms: Option<UnixMs>,
    pub acl_tags: Vec<String>,
}

impl std::fmt::Debug for PreAuthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreAuthKey")
            .field("id", &self.id)
            .field("reusable", &self.reusable)
            .field("used", &self.used)
            .field("expiration_ms", &self.expiration_ms)
            .field("acl_tags", &self.acl_tags)
            .finish_non_exhaustive()
    }
}

/// Whether a key can still join a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Usable,
    /// A single-use key a node has joined with.
    Used,
    Expired,
}

impl PreAuthKey {
    pub fn state(&self, now: UnixMs) -> KeyState {
        if self.expiration_ms.is_some_and(|e| e <= now) {
            KeyState::Expired
        } else if self.used && !self.reusable {
            KeyState::Used
        } else {
            KeyState::Usable
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    #[serde(default)]
    id: Option<Id>,
    key: String,
    #[serde(default)]
    reusable: bool,
    #[serde(default)]
    used: bool,
    #[serde(default)]
    expiration: Option<String>,
    #[serde(default)]
    acl_tags: Option<Vec<String>>,
}

fn key_at(path: &str, v: Value) -> Result<PreAuthKey, Refusal> {
    let r: RawKey = typed(path, v)?;
    if r.key.is_empty()
        || r.key.len() > 512
        || r.key.chars().any(|c| !c.is_ascii_graphic() || c == '\'')
    {
        return Err(Refusal::new(
            format!("{path}.key"),
            "is not a key (1..=512 printable ASCII characters, no quote)",
        )
        .limit(512));
    }
    Ok(PreAuthKey {
        id: r.id.map(|i| i.get(&format!("{path}.id"))).transpose()?,
        key: r.key,
        reusable: r.reusable,
        used: r.used,
        expiration_ms: time(&format!("{path}.expiration"), r.expiration.as_deref())?,
        acl_tags: r.acl_tags.unwrap_or_default(),
    })
}

/// `POST /api/v1/preauthkey`'s answer (`{"preAuthKey": {…}}`).
pub fn pre_auth_key(body: Value) -> Result<PreAuthKey, Refusal> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wrap {
        pre_auth_key: Value,
    }
    if !body.is_object() {
        return Err(Refusal::new("body", "must be a JSON object"));
    }
    let w: Wrap = typed("body", body)?;
    key_at("preAuthKey", w.pre_auth_key)
}

/// A pre-auth key as the view shows it: never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct KeyInfo {
    #[specta(type = Option<specta_typescript::Number>)]
    pub id: Option<u64>,
    pub acl_tags: Vec<String>,
    pub reusable: bool,
    pub state: KeyState,
    #[specta(type = Option<specta_typescript::Number>)]
    pub expiration_ms: Option<UnixMs>,
}

impl PreAuthKey {
    pub fn info(&self, now: UnixMs) -> KeyInfo {
        KeyInfo {
            id: self.id,
            acl_tags: self.acl_tags.clone(),
            reusable: self.reusable,
            state: self.state(now),
            expiration_ms: self.expiration_ms,
        }
    }
}

/// `GET /api/v1/preauthkey`'s answer (`{"preAuthKeys": […]}`), each key
/// refused alone.
pub fn pre_auth_keys(body: Value) -> Result<(Vec<PreAuthKey>, Vec<Refusal>), Refusal> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct List {
        #[serde(default)]
        pre_auth_keys: Option<Vec<Value>>,
    }
    if !body.is_object() {
        return Err(Refusal::new("body", "must be a JSON object"));
    }
    let list: List = typed("body", body)?;
    let (mut ok, mut refused) = (Vec::new(), Vec::new());
    for (i, v) in list
        .pre_auth_keys
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        match key_at(&format!("preAuthKeys[{i}]"), v) {
            Ok(k) => ok.push(k),
            Err(r) => refused.push(r),
        }
    }
    Ok((ok, refused))
}

/// `GET /version`'s answer (0.27 on; `{"version": "v0.28.0", …}`): the
/// release, without its `v`. An older server has no such route, and then
/// the nodes' shape is all that tells it.
pub fn version(body: &Value) -> Option<String> {
    body.get("version")
        .and_then(Value::as_str)
        .map(|v| v.trim_start_matches('v').to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

/// How a server is named in the view: its release when it says, else
/// what its shape and a missing `/version` tell (0.26 has neither
/// `/version` nor `tags`).
pub fn release(version: Option<&str>, shape: Shape) -> String {
    match (version, shape) {
        (Some(v), _) => v.to_owned(),
        (None, Shape::Tags) => "0.28 or later".to_owned(),
        (None, Shape::SplitTags) => "0.26 or earlier".to_owned(),
        (None, Shape::Unknown) => "unknown".to_owned(),
    }
}

/// `GET /api/v1/policy`'s answer: the policy's text and when it changed.
pub fn policy(body: Value) -> Result<(String, Option<UnixMs>), Refusal> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        policy: String,
        #[serde(default)]
        updated_at: Option<String>,
    }
    if !body.is_object() {
        return Err(Refusal::new("body", "must be a JSON object"));
    }
    let r: Raw = typed("body", body)?;
    Ok((r.policy, time("updatedAt", r.updated_at.as_deref())?))
}

/// An API key's form: `hskey-api-<prefix>-<secret>` (0.28 on) or the
/// older `<prefix>.<secret>`, which 0.28 still takes. Refused when it is neither, without
/// repeating it.
pub fn check_api_key(key: &str) -> Result<(), Refusal> {
    let ok_chars = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let ok = match key.strip_prefix("hskey-api-") {
        Some(rest) => ok_chars(rest),
        None => key
            .split_once('.')
            .is_some_and(|(prefix, secret)| ok_chars(prefix) && ok_chars(secret)),
    };
    if ok && key.len() <= 512 {
        Ok(())
    } else {
        Err(Refusal::new(
            "headscale_api_key",
            format!(
                "a {}-byte value that is not a Headscale API key (hskey-api-… or PREFIX.SECRET)",
                key.len()
            ),
        ))
    }
}

/// What an error's body says: the gateway's `{"code", "message"}`, an RFC
/// 7807 problem's `detail` or `title`, or the body itself (a 401 is the
/// plain text `Unauthorized`), clipped.
pub fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Raw {
        message: Option<String>,
        detail: Option<String>,
        title: Option<String>,
    }
    serde_json::from_slice::<Raw>(body)
        .ok()
        .and_then(|r| r.message.or(r.detail).or(r.title))
        .map(|m| oshal_kernel::text::clip(&m, 300).to_owned())
        .unwrap_or_else(|| oshal_kernel::text::clip(&String::from_utf8_lossy(body), 300).to_owned())
}

#[cfg(test)]
mod tests;
