//! Importing an OpenAPI 3 document (JSON) into an unsigned catalog manifest.
//!
//! What maps to what: `info.title`/`info.version` → name/version (`1.0`
//! becomes `1.0.0`); `x-oshal-id` or the title, slugged → id;
//! `x-oshal-category` (on the document or `info`) → category, else `other`;
//! `servers[0].url` → base URL; the first security scheme → auth (apiKey in a
//! header, http bearer, OAuth2 client credentials or a flow with a refresh
//! URL); each path and method → an operation whose parameters (path and
//! query parameters plus a JSON request body's properties) become one object
//! schema, whose scopes come from its `security` (or the document's), whose
//! effect is `read` for GET and `write` otherwise, and whose
//! `x-oshal-reconcile` names its reconciling read. Local `$ref`s are inlined.
//! The result is validated like any manifest.

use serde_json::{Map, Value, json};

use super::manifest::{Manifest, ManifestError};

/// The largest OpenAPI document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

fn bad(field: impl Into<String>, reason: impl Into<String>) -> ManifestError {
    ManifestError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Turns an OpenAPI 3 document into a validated (unsigned) manifest.
pub fn import(doc: &Value) -> Result<Manifest, ManifestError> {
    let size = serde_json::to_vec(doc).map(|v| v.len()).unwrap_or(0);
    if size > MAX_DOCUMENT_BYTES {
        return Err(bad(
            "document",
            format!("{size} bytes; the limit is {MAX_DOCUMENT_BYTES} bytes"),
        ));
    }
    let version = doc.get("openapi").and_then(Value::as_str).unwrap_or("");
    if !version.starts_with("3.") {
        return Err(bad(
            "openapi",
            format!("{version:?}: only OpenAPI 3.x documents are imported"),
        ));
    }
    let info = doc.get("info").ok_or_else(|| bad("info", "missing"))?;
    let title = info
        .get("title")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("info.title", "missing"))?;
    let id = match doc.get("x-oshal-id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => slug(title),
    };
    let category = doc
        .get("x-oshal-category")
        .or_else(|| info.get("x-oshal-category"))
        .and_then(Value::as_str)
        .unwrap_or("other");
    let base_url = doc
        .pointer("/servers/0/url")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad(
                "servers[0].url",
                "missing: the catalog needs the API's address",
            )
        })?;
    let (scheme_name, auth) = auth(doc)?;
    let global_security = doc.get("security");

    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("paths", "missing"))?;
    let mut operations = Vec::new();
    for (path, item) in paths {
        let shared = item.get("parameters").and_then(Value::as_array);
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let at = format!("paths.{path}.{method}");
            let op_id = op
                .get("operationId")
                .and_then(Value::as_str)
                .map(slug)
                .unwrap_or_else(|| slug(&format!("{method} {path}")));
            let params = params(doc, &at, shared, op)?;
            let security = op.get("security").or(global_security);
            let scopes: Vec<String> = security
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|req| req.get(&scheme_name))
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let mut entry = json!({
                "id": op_id,
                "method": method.to_uppercase(),
                "path": path,
                "params": params,
                "scopes": scopes,
                "effect": if *method == "get" { "read" } else { "write" },
            });
            if let Some(r) = op.get("x-oshal-reconcile").and_then(Value::as_str) {
                entry["reconcile"] = json!(slug(r));
            }
            if let Some(s) = op.get("summary").and_then(Value::as_str) {
                entry["summary"] = json!(s.chars().take(200).collect::<String>());
            }
            operations.push(entry);
        }
    }
    let manifest = json!({
        "id": id,
        "version": semver(info.get("version").and_then(Value::as_str).unwrap_or("")),
        "name": title.chars().take(128).collect::<String>(),
        "category": category,
        "base_url": base_url.trim_end_matches('/'),
        "auth": auth,
        "operations": operations,
    });
    Manifest::from_json(manifest)
}

/// The first security scheme the document declares, as an auth kind.
fn auth(doc: &Value) -> Result<(String, Value), ManifestError> {
    let field = "components.securitySchemes";
    let schemes = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            bad(
                field,
                "missing: a connector authenticates through the broker",
            )
        })?;
    let (name, scheme) = schemes.iter().next().expect("not empty");
    let kind = scheme.get("type").and_then(Value::as_str).unwrap_or("");
    let auth = match kind {
        "apiKey" if scheme.get("in").and_then(Value::as_str) == Some("header") => json!({
            "kind": "api_key",
            "header": scheme.get("name").and_then(Value::as_str).unwrap_or(""),
        }),
        "http"
            if scheme
                .get("scheme")
                .and_then(Value::as_str)
                .map(str::to_lowercase)
                .as_deref()
                == Some("bearer") =>
        {
            json!({ "kind": "bearer" })
        }
        "oauth2" => {
            let flows = scheme.get("flows").cloned().unwrap_or(Value::Null);
            if let Some(url) = flows
                .pointer("/clientCredentials/tokenUrl")
                .and_then(Value::as_str)
            {
                json!({ "kind": "oauth2_client_credentials", "token_url": url })
            } else if let Some(url) = flows
                .pointer("/authorizationCode/refreshUrl")
                .or_else(|| flows.pointer("/authorizationCode/tokenUrl"))
                .and_then(Value::as_str)
            {
                // OpenAPI has no field for it; RFC 8414 names it
                // `revocation_endpoint`, which the extension follows.
                match flows
                    .pointer("/authorizationCode/x-revocation-endpoint")
                    .and_then(Value::as_str)
                {
                    Some(revoke) => json!({
                        "kind": "oauth2_refresh_token",
                        "token_url": url,
                        "revocation_url": revoke,
                    }),
                    None => json!({ "kind": "oauth2_refresh_token", "token_url": url }),
                }
            } else {
                return Err(bad(
                    format!("{field}.{name}.flows"),
                    "needs clientCredentials.tokenUrl or authorizationCode.tokenUrl",
                ));
            }
        }
        other => {
            return Err(bad(
                format!("{field}.{name}.type"),
                format!(
                    "{other:?} is not supported; use an apiKey in a header, http bearer or oauth2"
                ),
            ));
        }
    };
    Ok((name.clone(), auth))
}

/// One object schema from path/query parameters and a JSON body.
fn params(
    doc: &Value,
    at: &str,
    shared: Option<&Vec<Value>>,
    op: &Value,
) -> Result<Value, ManifestError> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let listed = shared.into_iter().flatten().chain(
        op.get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    );
    for (i, p) in listed.enumerate() {
        let p = resolve(doc, p, 0).map_err(|r| bad(format!("{at}.parameters[{i}]"), r))?;
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("{at}.parameters[{i}].name"), "missing"))?;
        match p.get("in").and_then(Value::as_str) {
            Some("path" | "query") => {}
            // Headers and cookies are the runtime's and the broker's business.
            _ => continue,
        }
        let schema = resolve(doc, p.get("schema").unwrap_or(&json!({})), 0)
            .map_err(|r| bad(format!("{at}.parameters[{i}].schema"), r))?;
        properties.insert(name.to_owned(), schema);
        if p.get("required").and_then(Value::as_bool) == Some(true)
            || p.get("in").and_then(Value::as_str) == Some("path")
        {
            required.push(json!(name));
        }
    }
    if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
        let body = resolve(doc, body, 0).map_err(|r| bad(format!("{at}.requestBody"), r))?;
        if let Some(props) = body.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                properties.insert(k.clone(), v.clone());
            }
        }
        if let Some(req) = body.get("required").and_then(Value::as_array) {
            required.extend(req.iter().cloned());
        }
    }
    Ok(json!({ "type": "object", "properties": properties, "required": required }))
}

/// Inlines local `$ref`s (`#/components/…`), at most 16 deep.
fn resolve(doc: &Value, v: &Value, depth: usize) -> Result<Value, String> {
    if depth > 16 {
        return Err("$ref nests deeper than 16".into());
    }
    match v {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                let pointer = r
                    .strip_prefix('#')
                    .ok_or_else(|| format!("$ref {r:?}: only local references are imported"))?;
                let target = doc
                    .pointer(pointer)
                    .ok_or_else(|| format!("$ref {r:?} points nowhere"))?;
                return resolve(doc, target, depth + 1);
            }
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), resolve(doc, v, depth + 1)?);
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items.iter().map(|i| resolve(doc, i, depth + 1)).collect(),
        other => Ok(other.clone()),
    }
}

/// `Pet Store API` → `pet-store-api`.
fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || (c == '_' && !out.is_empty()) {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out = if out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.to_owned()
    } else {
        format!("x-{out}")
    };
    out.chars()
        .take(64)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// `1` → `1.0.0`, `1.2` → `1.2.0`; anything else is kept and validated.
fn semver(v: &str) -> String {
    match v.split('.').count() {
        1 => format!("{v}.0.0"),
        2 => format!("{v}.0"),
        _ => v.to_owned(),
    }
}
