//! Connector manifests: what an outside system offers, checked strictly.
//!
//! A manifest names a connector (id, version, category), where it lives
//! (`base_url`), how the broker authenticates to it (`auth`) and what it can
//! do (`operations`: method, path, a JSON Schema for the parameters, the
//! scopes a caller needs and whether it only reads or writes). Nothing in a
//! manifest is trusted until [`Manifest::validate`] has passed it; every
//! refusal names the field (as a path, `operations[2].path`) and the reason.
//!
//! [`canonical_bytes`] is what a publisher signs: the JSON with every object's
//! keys sorted and no whitespace.

use serde::{Deserialize, Serialize};
use specta::Type;
use std::collections::BTreeSet;

/// The largest manifest accepted, serialized.
pub const MAX_MANIFEST_BYTES: usize = 256 * 1024;
/// The most operations one connector may declare.
pub const MAX_OPERATIONS: usize = 128;
/// The most scopes one operation may require.
pub const MAX_SCOPES: usize = 16;
/// The longest id, operation id or scope.
pub const MAX_NAME: usize = 64;
/// The scheme of a built-in connector's `base_url`, `oshal://<id>`: served
/// in process, never over the network (`crate::builtin`).
pub const BUILT_IN_SCHEME: &str = "oshal";

/// What a connector is for; the catalog and the views group by it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Type,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
    utoipa::ToSchema,
)]
#[strum(serialize_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Commerce,
    Travel,
    Media,
    Finance,
    Communication,
    Productivity,
    Data,
    Other,
}

/// How the broker proves who it is to the outside system. The secret itself
/// never appears here: the broker reads it from its backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthKind {
    /// A static key sent in `header` (secret field `api_key`).
    ApiKey { header: String },
    /// `Authorization: Bearer` with a static token (secret field `token`).
    Bearer,
    /// OAuth2 client credentials (secret fields `client_id`, `client_secret`).
    Oauth2ClientCredentials { token_url: String },
    /// OAuth2 with a refresh token (secret fields `client_id`,
    /// `client_secret`, `refresh_token`); a rotated refresh token is stored back.
    /// `revocation_url` is the provider's RFC 7009 revocation endpoint: where
    /// a rotation revokes the refresh token it replaces.
    Oauth2RefreshToken {
        token_url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revocation_url: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Changes nothing outside: safe to retry.
    Read,
    /// Changes something outside: sent once, with an idempotency key, and
    /// recorded in the effect ledger.
    Write,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
    utoipa::ToSchema,
)]
#[strum(serialize_all = "UPPERCASE")]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// Whether the parameters travel in a JSON body (else in the query).
    pub fn has_body(self) -> bool {
        matches!(self, Method::Post | Method::Put | Method::Patch)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    pub id: String,
    pub method: Method,
    /// Relative to `base_url`; `{name}` segments are filled from parameters.
    pub path: String,
    /// A JSON Schema (type `object`) the parameters must satisfy.
    #[specta(type = specta_typescript::Unknown)]
    pub params: serde_json::Value,
    /// Scopes the caller's grant must hold.
    #[serde(default)]
    pub scopes: Vec<String>,
    pub effect: Effect,
    /// For a write: a read operation that finds the write by its
    /// idempotency key (parameter `idempotency_key`), used to settle an
    /// unknown outcome without sending the write again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

impl Operation {
    /// The parameters against this operation's schema; the error names the
    /// field (`params.petId`) and why.
    pub fn check_params(&self, params: &serde_json::Value) -> Result<(), InvalidParams> {
        // A path parameter of `.` or `..` would leave the operation's path
        // (`/accounts/../balance` is `/balance`): URL parsers resolve dot
        // segments even percent-encoded, so it is refused, not escaped.
        for name in self.path_params() {
            let value = params.get(name).map(path_text);
            if let Some(v @ ("." | "..")) = value.as_deref() {
                return Err(InvalidParams {
                    field: format!("params.{name}"),
                    reason: format!(
                        "{v:?} would leave the operation's path; a path parameter may not be . or .."
                    ),
                });
            }
        }
        let validator = jsonschema::validator_for(&self.params).map_err(|e| InvalidParams {
            field: "params".into(),
            reason: format!("the operation's schema does not compile: {e}"),
        })?;
        if let Some(e) = validator.iter_errors(params).next() {
            let at = e.instance_path().to_string();
            return Err(InvalidParams {
                field: format!("params{}", at.replace('/', ".")),
                reason: e.to_string(),
            });
        }
        Ok(())
    }
}

impl Operation {
    /// The names of the path's `{…}` parameters, in order.
    pub fn path_params(&self) -> impl Iterator<Item = &str> {
        self.path
            .split('{')
            .skip(1)
            .filter_map(|p| p.split_once('}').map(|(name, _)| name))
    }
}

/// A parameter's value as it goes into a path: a string as it is, anything
/// else as JSON.
pub fn path_text(value: &serde_json::Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

/// Parameters that do not fit an operation's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidParams {
    pub field: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    pub version: String,
    pub name: String,
    pub category: Category,
    pub base_url: String,
    pub auth: AuthKind,
    pub operations: Vec<Operation>,
}

/// A manifest refused: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ManifestError {
    pub field: String,
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.into(),
        reason: reason.into(),
    }
}

impl Manifest {
    /// Parses and validates a manifest from JSON.
    pub fn from_json(value: serde_json::Value) -> Result<Self, ManifestError> {
        let size = serde_json::to_vec(&value).map(|v| v.len()).unwrap_or(0);
        if size > MAX_MANIFEST_BYTES {
            return Err(bad(
                "manifest",
                format!("{size} bytes; the limit is {MAX_MANIFEST_BYTES} bytes"),
            ));
        }
        let manifest: Manifest = serde_json::from_value(value).map_err(|e| {
            bad(
                "manifest",
                format!("not a connector manifest ({e}); expected id, version, name, category, base_url, auth, operations"),
            )
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    pub fn operation(&self, id: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.id == id)
    }

    /// Every scope any operation requires: the most a grant may hold.
    pub fn all_scopes(&self) -> BTreeSet<&str> {
        self.operations
            .iter()
            .flat_map(|o| o.scopes.iter().map(String::as_str))
            .collect()
    }

    /// Checks every field; the first refusal names its field.
    pub fn validate(&self) -> Result<(), ManifestError> {
        self.check(false)
    }

    /// Checks a built-in connector's manifest: as [`Self::validate`], but
    /// its `base_url` may also be `oshal://<id>`, a name served in process
    /// (no other manifest may use that scheme).
    pub fn validate_built_in(&self) -> Result<(), ManifestError> {
        self.check(true)
    }

    fn check(&self, built_in: bool) -> Result<(), ManifestError> {
        check_name("id", &self.id)?;
        check_version(&self.version)?;
        if self.name.trim().is_empty() || self.name.chars().count() > 128 {
            return Err(bad("name", "must be 1 to 128 characters"));
        }
        let served_in_process = format!("{BUILT_IN_SCHEME}://{}", self.id);
        if !(built_in && self.base_url == served_in_process) {
            check_url("base_url", &self.base_url).map_err(|e| match built_in {
                true => bad(
                    "base_url",
                    format!("{}; a built-in may also be {served_in_process:?}", e.reason),
                ),
                false => e,
            })?;
        }
        match &self.auth {
            AuthKind::ApiKey { header } => {
                if header.is_empty()
                    || header.len() > MAX_NAME
                    || !header
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                {
                    return Err(bad(
                        "auth.header",
                        format!(
                            "must be an HTTP header name of 1 to {MAX_NAME} letters, digits or '-'"
                        ),
                    ));
                }
                if header.eq_ignore_ascii_case("idempotency-key") {
                    return Err(bad(
                        "auth.header",
                        "Idempotency-Key is the runtime's own header",
                    ));
                }
            }
            AuthKind::Bearer => {}
            AuthKind::Oauth2ClientCredentials { token_url } => {
                check_url("auth.token_url", token_url)?
            }
            AuthKind::Oauth2RefreshToken {
                token_url,
                revocation_url,
            } => {
                check_url("auth.token_url", token_url)?;
                if let Some(url) = revocation_url {
                    check_url("auth.revocation_url", url)?;
                }
            }
        }
        if self.operations.is_empty() || self.operations.len() > MAX_OPERATIONS {
            return Err(bad(
                "operations",
                format!(
                    "{} operations; a connector declares 1 to {MAX_OPERATIONS}",
                    self.operations.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, op) in self.operations.iter().enumerate() {
            let at = |f: &str| format!("operations[{i}].{f}");
            check_name(&at("id"), &op.id)?;
            if !seen.insert(op.id.as_str()) {
                return Err(bad(at("id"), format!("{:?} is declared twice", op.id)));
            }
            check_schema(&at("params"), &op.params)?;
            check_path(&at("path"), &op.path, &op.params)?;
            if op.scopes.len() > MAX_SCOPES {
                return Err(bad(
                    at("scopes"),
                    format!("{} scopes; the limit is {MAX_SCOPES}", op.scopes.len()),
                ));
            }
            for (j, s) in op.scopes.iter().enumerate() {
                check_scope(&format!("operations[{i}].scopes[{j}]"), s)?;
            }
            if op.method == Method::Get && op.effect == Effect::Write {
                return Err(bad(at("effect"), "a GET cannot be a write"));
            }
            if let Some(r) = &op.reconcile {
                if op.effect != Effect::Write {
                    return Err(bad(at("reconcile"), "only a write is reconciled"));
                }
                match self.operation(r) {
                    Some(target) if target.effect == Effect::Read => {
                        if let Some(s) = target.scopes.iter().find(|s| !op.scopes.contains(s)) {
                            return Err(bad(
                                at("reconcile"),
                                format!(
                                    "{r:?} needs scope {s:?}, which the write does not require"
                                ),
                            ));
                        }
                    }
                    Some(_) => return Err(bad(at("reconcile"), format!("{r:?} is not a read"))),
                    None => return Err(bad(at("reconcile"), format!("no operation {r:?}"))),
                }
            }
        }
        Ok(())
    }
}

/// Lowercase letters, digits, `-` and `_`, starting with a letter.
fn check_name(field: &str, s: &str) -> Result<(), ManifestError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("{s:?} must be 1 to {MAX_NAME} of a-z, 0-9, '-', '_', starting with a letter"),
        ))
    }
}

fn check_scope(field: &str, s: &str) -> Result<(), ManifestError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:-/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("{s:?} must be 1 to {MAX_NAME} of a-z, A-Z, 0-9, '_', '.', ':', '-', '/'"),
        ))
    }
}

fn check_version(v: &str) -> Result<(), ManifestError> {
    let parts: Vec<&str> = v.split('.').collect();
    let ok = parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        Ok(())
    } else {
        Err(bad("version", format!("{v:?} is not MAJOR.MINOR.PATCH")))
    }
}

/// HTTPS, or plain HTTP to a loopback address; no credentials, query or
/// fragment in the URL.
pub(crate) fn check_url(field: &str, s: &str) -> Result<(), ManifestError> {
    let url =
        reqwest::Url::parse(s).map_err(|e| bad(field, format!("{s:?} is not a URL ({e})")))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(bad(field, format!("{s:?} has no host"))),
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(bad(
                field,
                "plain http is allowed only to a loopback address; use https",
            ));
        }
        other => return Err(bad(field, format!("scheme {other:?}; use https"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            field,
            "must not carry credentials; the broker supplies them",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(field, "must not have a query or a fragment"));
    }
    Ok(())
}

/// The path starts with `/`, and every `{name}` in it is a required
/// string/number/integer property of the parameters.
fn check_path(field: &str, path: &str, params: &serde_json::Value) -> Result<(), ManifestError> {
    if !path.starts_with('/')
        || path.len() > 512
        || path.contains("..")
        || path.contains(['?', '#'])
    {
        return Err(bad(
            field,
            format!(
                "{path:?} must start with '/', be at most 512 bytes and hold no '..', '?' or '#'"
            ),
        ));
    }
    let required: BTreeSet<&str> = params
        .get("required")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(bad(field, "an unclosed '{'"));
        };
        let name = &rest[open + 1..open + close];
        let kind = params
            .pointer(&format!("/properties/{name}/type"))
            .and_then(|t| t.as_str());
        if !required.contains(name) || !matches!(kind, Some("string" | "integer" | "number")) {
            return Err(bad(
                field,
                format!("{{{name}}} must be a required string, integer or number parameter"),
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// A JSON Schema of type `object` that compiles.
fn check_schema(field: &str, schema: &serde_json::Value) -> Result<(), ManifestError> {
    if schema.get("type").and_then(|t| t.as_str()) != Some("object") {
        return Err(bad(
            field,
            "must be a JSON Schema with \"type\": \"object\"",
        ));
    }
    jsonschema::validator_for(schema)
        .map(|_| ())
        .map_err(|e| bad(field, format!("not a valid JSON Schema: {e}")))
}

/// The bytes a publisher signs: the JSON with every object's keys sorted,
/// no whitespace, numbers as serde_json writes them.
pub fn canonical_bytes(value: &serde_json::Value) -> Vec<u8> {
    fn write(v: &serde_json::Value, out: &mut Vec<u8>) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(&serde_json::Value::String(k.clone()), out);
                    out.push(b':');
                    write(&map[k], out);
                }
                out.push(b'}');
            }
            serde_json::Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend(serde_json::to_vec(scalar).unwrap_or_default()),
        }
    }
    let mut out = Vec::new();
    write(value, &mut out);
    out
}
