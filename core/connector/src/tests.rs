use serde_json::json;

use super::manifest::{Manifest, canonical_bytes};
use super::openapi;
use super::signing::{self, Envelope, TrustedKeys};

fn shipped() -> Vec<(String, Envelope)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/connectors");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name != "publishers.json" {
            let text = std::fs::read_to_string(&path).unwrap();
            out.push((name, serde_json::from_str(&text).unwrap()));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn valid() -> serde_json::Value {
    json!({
        "id": "shop", "version": "1.0.0", "name": "Shop", "category": "commerce",
        "base_url": "https://api.shop.example", "auth": {"kind": "api_key", "header": "X-Api-Key"},
        "operations": [
            {"id": "get_order", "method": "GET", "path": "/orders/{id}", "effect": "read", "scopes": ["orders:read"],
             "params": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}},
            {"id": "find", "method": "GET", "path": "/orders/by-key/{idempotency_key}", "effect": "read", "scopes": ["orders:read"],
             "params": {"type": "object", "properties": {"idempotency_key": {"type": "string"}}, "required": ["idempotency_key"]}},
            {"id": "create_order", "method": "POST", "path": "/orders", "effect": "write", "reconcile": "find",
             "scopes": ["orders:read", "orders:write"], "params": {"type": "object"}}
        ]
    })
}

#[test]
fn the_shipped_connectors_verify_one_per_category() {
    let keys = TrustedKeys::shipped();
    let mut categories = Vec::new();
    for (name, envelope) in shipped() {
        let (manifest, publisher) = keys
            .verify(&envelope)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(publisher, "oshal-curated-2026");
        categories.push(serde_json::to_value(manifest.category).unwrap());
    }
    assert_eq!(categories, ["commerce", "finance", "media", "travel"]);
}

#[test]
fn a_tampered_manifest_or_an_unknown_key_is_refused() {
    let keys = TrustedKeys::shipped();
    let (_, envelope) = shipped().remove(0);
    for (pointer, value) in [
        ("/base_url", json!("https://evil.example")),
        ("/operations/0/scopes", json!([])),
        ("/version", json!("1.0.1")),
    ] {
        let mut tampered = envelope.clone();
        *tampered.manifest.pointer_mut(pointer).unwrap() = value;
        let e = keys.verify(&tampered).unwrap_err();
        assert_eq!(e.field, "signature.ed25519", "{pointer}: {e}");
        assert!(e.reason.contains("changed after signing"), "{e}");
    }
    // A stranger's key, even over a valid manifest, is not trusted.
    let stranger = signing::generate_key();
    let e = keys
        .verify(&signing::sign(&valid(), "stranger", &stranger))
        .unwrap_err();
    assert_eq!(e.field, "signature.key_id");
    // Claiming a trusted key id does not help.
    let e = keys
        .verify(&signing::sign(&valid(), "oshal-curated-2026", &stranger))
        .unwrap_err();
    assert_eq!(e.field, "signature.ed25519");
    // A trusted key that signs an invalid manifest: the manifest is refused.
    let mut mine = TrustedKeys::default();
    mine.insert("mine", stranger.verifying_key());
    let mut broken = valid();
    broken["base_url"] = json!("http://api.shop.example");
    let e = mine
        .verify(&signing::sign(&broken, "mine", &stranger))
        .unwrap_err();
    assert_eq!(e.field, "base_url");
    assert!(
        mine.verify(&signing::sign(&valid(), "mine", &stranger))
            .is_ok()
    );
}

#[test]
fn canonical_bytes_sort_keys_at_every_depth() {
    let a = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": 1}], "c": "x"}});
    assert_eq!(
        String::from_utf8(canonical_bytes(&a)).unwrap(),
        r#"{"a":{"c":"x","d":[1,{"y":1,"z":0}]},"b":1}"#
    );
}

#[test]
fn every_bad_field_of_a_manifest_is_named() {
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        ("/id", json!("Shop!"), "id"),
        ("/version", json!("1.0"), "version"),
        ("/category", json!("weapons"), "manifest"),
        ("/base_url", json!("ftp://x.example"), "base_url"),
        ("/base_url", json!("https://user:pw@x.example"), "base_url"),
        ("/base_url", json!("http://x.example"), "base_url"),
        (
            "/auth",
            json!({"kind": "api_key", "header": "Idempotency-Key"}),
            "auth.header",
        ),
        (
            "/auth",
            json!({"kind": "oauth2_client_credentials", "token_url": "nope"}),
            "auth.token_url",
        ),
        ("/operations", json!([]), "operations"),
        (
            "/operations/0/id",
            json!("create_order"),
            "operations[2].id",
        ),
        ("/operations/0/path", json!("orders"), "operations[0].path"),
        (
            "/operations/0/path",
            json!("/orders/{nope}"),
            "operations[0].path",
        ),
        (
            "/operations/0/params",
            json!({"type": "array"}),
            "operations[0].params",
        ),
        (
            "/operations/0/params",
            json!({"type": "object", "properties": {"id": {"type": 7}}, "required": ["id"]}),
            "operations[0].params",
        ),
        (
            "/operations/0/scopes",
            json!(["has space"]),
            "operations[0].scopes[0]",
        ),
        (
            "/operations/0/effect",
            json!("write"),
            "operations[0].effect",
        ),
        (
            "/operations/2/reconcile",
            json!("create_order"),
            "operations[2].reconcile",
        ),
        (
            "/operations/2/reconcile",
            json!("missing"),
            "operations[2].reconcile",
        ),
        (
            "/operations/2/scopes",
            json!(["orders:write"]),
            "operations[2].reconcile",
        ),
    ];
    for (pointer, value, field) in cases {
        let mut m = valid();
        *m.pointer_mut(pointer).unwrap() = value.clone();
        let e = Manifest::from_json(m).unwrap_err();
        assert_eq!(e.field, field, "{pointer} = {value}: {e}");
        assert!(!e.reason.is_empty());
    }
    let mut huge = valid();
    huge["name"] = json!("x".repeat(super::manifest::MAX_MANIFEST_BYTES));
    let e = Manifest::from_json(huge).unwrap_err();
    assert_eq!(e.field, "manifest");
    assert!(e.reason.contains("limit is 262144 bytes"), "{e}");
    assert!(Manifest::from_json(valid()).is_ok());
}

#[test]
fn an_openapi_document_imports_into_a_manifest() {
    let doc = json!({
        "openapi": "3.0.3",
        "info": {"title": "Pet Store API", "version": "1.2", "x-oshal-category": "commerce"},
        "servers": [{"url": "https://pets.example/v1/"}],
        "components": {
            "securitySchemes": {"petAuth": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "https://pets.example/token", "scopes": {}}}}},
            "schemas": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name"]}}
        },
        "security": [{"petAuth": ["pets:read"]}],
        "paths": {
            "/pets/{petId}": {
                "parameters": [{"name": "petId", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {"operationId": "getPet", "summary": "One pet"}
            },
            "/pets": {
                "post": {"operationId": "createPet", "security": [{"petAuth": ["pets:write"]}],
                         "parameters": [{"name": "X-Trace", "in": "header", "schema": {"type": "string"}}],
                         "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}}}}
            }
        }
    });
    let m = openapi::import(&doc).unwrap();
    assert_eq!(m.id, "pet-store-api");
    assert_eq!(m.version, "1.2.0");
    assert_eq!(m.base_url, "https://pets.example/v1");
    assert_eq!(serde_json::to_value(m.category).unwrap(), "commerce");
    let get = m.operation("getpet").unwrap();
    assert_eq!(get.scopes, ["pets:read"]);
    assert_eq!(get.params["required"], json!(["petId"]));
    let post = m.operation("createpet").unwrap();
    assert_eq!(post.scopes, ["pets:write"]);
    assert_eq!(serde_json::to_value(post.effect).unwrap(), "write");
    assert_eq!(post.params["properties"]["age"]["type"], "integer");
    assert!(
        post.params["properties"].get("X-Trace").is_none(),
        "headers are not parameters"
    );

    let mut bad = doc.clone();
    bad["openapi"] = json!("2.0");
    assert_eq!(openapi::import(&bad).unwrap_err().field, "openapi");
    let mut bad = doc.clone();
    bad["components"]["securitySchemes"] = json!({});
    assert_eq!(
        openapi::import(&bad).unwrap_err().field,
        "components.securitySchemes"
    );
    let mut bad = doc.clone();
    bad["servers"] = json!([{"url": "http://pets.example"}]);
    assert_eq!(openapi::import(&bad).unwrap_err().field, "base_url");
    let mut bad = doc;
    bad["paths"]["/pets"]["post"]["requestBody"]["content"]["application/json"]["schema"] =
        json!({"$ref": "https://elsewhere.example/x"});
    let e = openapi::import(&bad).unwrap_err();
    assert_eq!(e.field, "paths./pets.post.requestBody");
    assert!(e.reason.contains("only local references"), "{e}");
}
