use serde_json::json;

use super::*;
use crate::json as parse_json;

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    parse_json(&std::fs::read(path).expect("fixture")).expect("fixture is JSON")
}

#[test]
fn the_split_tag_shape_of_0_26_and_0_27_is_read() {
    let out = nodes(fixture("headscale-0.26-nodes.json")).expect("read");
    assert_eq!(out.shape, Some(Shape::SplitTags));
    assert!(out.refused.is_empty(), "{:?}", out.refused);
    let n1 = &out.nodes[1];
    assert_eq!((n1.id, n1.name.as_str()), (2, "n1"));
    assert_eq!(n1.tags, ["tag:oshal-node"]);
    assert_eq!(n1.user.as_deref(), Some("alice"));
    assert_eq!(n1.online, Some(true));
    assert_eq!(n1.addresses[0].to_string(), "100.64.0.2");
    assert_eq!(n1.expiry_ms, None, "a null expiry never expires");
    assert_eq!(n1.register_method, "REGISTER_METHOD_AUTH_KEY");
    assert_eq!(out.nodes[2].online, Some(false));
}

#[test]
fn the_tags_shape_of_0_28_is_read_and_its_tagged_devices_user_is_no_user() {
    let out = nodes(fixture("headscale-0.28-nodes.json")).expect("read");
    assert_eq!(out.shape, Some(Shape::Tags));
    let n1 = &out.nodes[1];
    assert_eq!(n1.tags, ["tag:oshal-node"]);
    assert_eq!(
        n1.user, None,
        "0.28 lists a tagged node under tagged-devices"
    );
    assert_eq!(out.nodes[3].user.as_deref(), Some("alice"));
    assert_eq!(release(None, Shape::Tags), "0.28 or later");
    assert_eq!(
        release(
            version(&json!({"version": "v0.27.1"})).as_deref(),
            Shape::SplitTags
        ),
        "0.27.1"
    );
}

#[test]
fn forced_and_valid_tags_are_the_effective_tags_and_invalid_ones_are_apart() {
    let out = nodes(json!({"nodes": [{
        "id": "9", "name": "x", "forcedTags": ["tag:a"], "validTags": ["tag:a", "tag:b"],
        "invalidTags": ["tag:c"]
    }]}))
    .expect("read");
    assert_eq!(out.nodes[0].tags, ["tag:a", "tag:b"]);
    assert_eq!(out.nodes[0].invalid_tags, ["tag:c"]);
}

#[test]
fn a_malformed_node_is_refused_alone_at_its_field() {
    let out = nodes(json!({"nodes": [
        {"id": "1", "name": "ok", "ipAddresses": ["100.64.0.9"]},
        {"id": "two", "name": "bad-id"},
        {"id": 3, "name": "bad-ip", "ipAddresses": ["100.64.0.1", "not-an-ip"]},
        {"id": "4", "name": "bad-time", "lastSeen": "yesterday"},
        {"id": "5", "name": "bad-key", "nodeKey": "mkey:abc"},
        {"id": "6", "name": "ok-too", "online": null, "user": null},
        {"id": "7", "name": "other-shape", "tags": []},
        {"id": "8", "name": "x", "forcedTags": []}
    ]}))
    .expect("the list is read");
    let names: Vec<_> = out.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["ok", "ok-too", "other-shape"]);
    let paths: Vec<_> = out.refused.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "nodes[1].id",
            "nodes[2].ipAddresses[1]",
            "nodes[3].lastSeen",
            "nodes[4].nodeKey",
            "nodes[7]"
        ]
    );
    assert_eq!(out.nodes[1].online, None, "null is absent");
}

#[test]
fn garbage_is_refused_whole_naming_the_field() {
    assert_eq!(nodes(json!([1, 2])).expect_err("refused").path, "body");
    assert_eq!(
        nodes(json!({"nodes": 5})).expect_err("refused").path,
        "nodes"
    );
    assert_eq!(parse_json(b"<html>").expect_err("refused").path, "body");
    assert_eq!(
        pre_auth_key(json!({"preAuthKey": {"id": "1"}}))
            .expect_err("refused")
            .path,
        "preAuthKey.key"
    );
}

#[test]
fn a_key_is_usable_used_or_expired_and_its_debug_hides_it() {
    let k = pre_auth_key(json!({"preAuthKey": {
        "user": null, "id": "7", "key": "hskey-auth-AbCdEfGhIjKl-secretsecret",
        "reusable": false, "ephemeral": false, "used": false,
        "expiration": "2026-12-04T11:00:00Z", "createdAt": "2026-12-04T10:00:00Z",
        "aclTags": ["tag:oshal-node"]
    }}))
    .expect("read");
    let at = |s: &str| s.parse::<jiff::Timestamp>().expect("time").as_millisecond();
    assert_eq!(k.state(at("2026-12-04T10:30:00Z")), KeyState::Usable);
    assert_eq!(k.state(at("2026-12-04T11:00:00Z")), KeyState::Expired);
    assert_eq!(
        PreAuthKey {
            used: true,
            ..k.clone()
        }
        .state(at("2026-12-04T10:30:00Z")),
        KeyState::Used
    );
    assert!(!format!("{k:?}").contains("secret"));
    let (listed, refused) = pre_auth_keys(json!({"preAuthKeys": [
        {"id": "4", "key": "hskey-auth-Zx9Yw8Vu7Ts6-***", "used": true, "expiration": "2026-02-05T09:00:00Z"},
        {"id": "5"}
    ]}))
    .expect("read");
    assert_eq!(
        listed[0].info(at("2026-12-04T10:30:00Z")).state,
        KeyState::Expired
    );
    assert_eq!(refused[0].path, "preAuthKeys[1].key");
}

#[test]
fn a_key_request_is_single_use_tagged_and_expiring() {
    let body = key_request(Some(1), &["tag:oshal-node".into()], 1_780_000_000_000);
    assert_eq!(body["user"], "1");
    assert_eq!(body["reusable"], false);
    assert_eq!(body["aclTags"], json!(["tag:oshal-node"]));
    assert!(
        body["expiration"]
            .as_str()
            .is_some_and(|e| e.ends_with('Z'))
    );
    assert!(
        key_request(None, &[], 0).get("user").is_none(),
        "0.28: tags alone"
    );
}

#[test]
fn api_keys_of_both_forms_pass_and_others_are_refused_without_repeating_them() {
    check_api_key("hskey-api-AbCdEfGhIjKl-0123456789abcdef").expect("0.28 form");
    check_api_key("abcdefg.0123456789abcdef0123456789abcdef").expect("older form");
    let r = check_api_key("Bearer s3cret value").expect_err("refused");
    assert_eq!(r.path, "headscale_api_key");
    assert!(!r.reason.contains("s3cret"));
}

#[test]
fn error_bodies_of_each_kind_are_read() {
    assert_eq!(
        error_message(br#"{"code":5,"message":"node not found","details":[]}"#),
        "node not found"
    );
    assert_eq!(error_message(br#"{"title":"Bad","detail":"no"}"#), "no");
    assert_eq!(error_message(b"Unauthorized"), "Unauthorized");
}

#[test]
fn users_are_read_and_one_without_an_id_is_refused_alone() {
    let (users, refused) = users(json!({"users": [
        {"id": "1", "name": "alice"}, {"name": "ghost"}, {"id": 2, "name": "", "email": "bob@example.com"}
    ]}))
    .expect("read");
    assert_eq!(
        users,
        [
            User {
                id: 1,
                name: "alice".into()
            },
            User {
                id: 2,
                name: "bob@example.com".into()
            }
        ]
    );
    assert_eq!(refused[0].path, "users[1].id");
}
