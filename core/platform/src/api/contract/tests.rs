use oshal_kernel::name::Named;
use serde_json::Value;

use super::*;

fn document() -> Value {
    serde_json::from_str(&openapi_json()).expect("the contract is JSON")
}

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(s)) => out.push(s),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// The repository keeps the contract (`core/platform/openapi.json`) for
/// readers, generators and the fuzzer; a change to a route or a type that
/// leaves it stale fails here. Regenerate: `OSHAL_BLESS=1 cargo test -p
/// oshal-core --lib contract`.
#[test]
fn the_committed_contract_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let now = openapi_json();
    if std::env::var_os("OSHAL_BLESS").is_some() {
        std::fs::write(path, &now).expect("write openapi.json");
        return;
    }
    let kept = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        kept == now,
        "core/platform/openapi.json is stale: run OSHAL_BLESS=1 cargo test -p oshal-core --lib contract"
    );
}

#[test]
fn every_row_is_one_operation_and_every_reference_resolves() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    for route in r::ALL {
        let op = &doc["paths"][route.path][route.verb.as_str().to_lowercase()];
        assert_eq!(
            op["operationId"],
            route.name,
            "{} {}",
            route.verb.as_str(),
            route.path
        );
        assert!(
            op["responses"][route.ok.to_string()].is_object(),
            "{}: no {} response",
            route.name,
            route.ok
        );
        // Every refusal is the one shape.
        for (status, r) in op["responses"].as_object().expect("responses") {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{} {status}",
                    route.name
                );
            }
        }
        let gated = route.auth != Auth::Public;
        assert_eq!(op["responses"]["401"].is_object(), gated, "{}", route.name);
        assert_eq!(
            op["security"].as_array().is_some_and(|s| !s.is_empty()),
            gated,
            "{}",
            route.name
        );
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 50, "only {} references", all.len());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{r} is not a schema reference"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} points at nothing (a type alias the derive took for a type?)"
        );
    }
}

/// The limits the contract states are the limits the server enforces.
#[test]
fn the_stated_limits_are_the_enforced_ones() {
    let doc = document();
    let param = |path: &str, name: &str| -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no parameter {name}"))["schema"]
            .clone()
    };
    assert_eq!(
        param("/api/v1/tickets", "limit")["maximum"],
        crate::store::MAX_PAGE
    );
    assert_eq!(
        param("/api/v1/security/findings", "limit")["maximum"],
        crate::security::store::MAX_LIST
    );
    assert_eq!(param("/api/v1/audit", "limit")["maximum"], 5000);
    let kinds = param("/api/v1/tickets", "kind")["pattern"]
        .as_str()
        .expect("a pattern")
        .to_owned();
    assert_eq!(
        kinds,
        format!("^({})$", crate::ticket::Work::KINDS.join("|"))
    );
    let states: Vec<String> =
        serde_json::from_value(doc["components"]["schemas"]["TicketState"]["enum"].clone())
            .expect("ticket states");
    assert_eq!(states.len(), crate::ticket::TicketState::all().len());
}

/// A name's pattern and length accept exactly what `check_name` accepts.
#[test]
fn the_name_pattern_is_the_name_check() {
    use crate::ticket::{NAME_MAX, NAME_PATTERN, check_name};
    let pattern = regex::Regex::new(NAME_PATTERN).expect("a regex");
    let long = "a".repeat(NAME_MAX + 1);
    for s in [
        "acme", "a", "A-1.b_c", "-lead", ".x", "", "sp ace", "ünï", "x/y", "a\u{0}", &long,
    ] {
        let by_contract = pattern.is_match(s) && s.len() <= NAME_MAX;
        assert_eq!(by_contract, check_name("tenant", s).is_ok(), "{s:?}");
    }
}

/// Each link names an operation that exists, by the key OpenAPI reads.
#[test]
fn every_link_leads_to_an_operation() {
    let doc = document();
    let ids: Vec<&str> = r::ALL.iter().map(|r| r.name).collect();
    let mut n = 0;
    for (_, item) in doc["paths"].as_object().expect("paths") {
        for (_, op) in item.as_object().expect("a path item") {
            for (_, response) in op["responses"].as_object().into_iter().flatten() {
                for (_, link) in response["links"].as_object().into_iter().flatten() {
                    let to = link["operationId"].as_str().expect("an operationId");
                    assert!(ids.contains(&to), "a link to {to}");
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, LINKS.len());
}
