use serde_json::json;

use super::*;

fn fixture() -> Value {
    let path = format!(
        "{}/fixtures/tailscale-status.json",
        env!("CARGO_MANIFEST_DIR")
    );
    crate::json(&std::fs::read(path).expect("fixture")).expect("fixture is JSON")
}

fn by_name<'a>(s: &'a LocalStatus, name: &str) -> &'a Peer {
    s.peers
        .iter()
        .find(|p| p.host_name == name)
        .unwrap_or_else(|| panic!("no peer {name}"))
}

#[test]
fn the_status_is_read_with_its_host_its_peers_and_its_health() {
    let s = status(fixture()).expect("read");
    assert!(s.running());
    assert_eq!(s.tailnet.as_deref(), Some("oshal.mesh"));
    assert_eq!(s.health.len(), 1);
    let host = s.host.as_ref().expect("Self");
    assert_eq!(host.host_name, "controller");
    assert_eq!(host.tags, ["tag:oshal-controller"]);
    assert_eq!(s.peers.len(), 3);
    let n1 = by_name(&s, "n1");
    assert_eq!(
        n1.path,
        Path::Direct {
            endpoint: "198.51.100.7:41641".into()
        }
    );
    assert!(n1.last_handshake_ms.is_some());
    assert_eq!(n1.user.as_deref(), Some("tagged-devices"));
    let n2 = by_name(&s, "n2");
    assert!(!n2.online);
    assert_eq!(n2.path, Path::Idle, "an inactive peer has no path to tell");
    assert_eq!(
        by_name(&s, "laptop").last_handshake_ms,
        None,
        "Go's zero time is never"
    );
}

#[test]
fn an_active_peer_without_an_endpoint_goes_through_its_relay() {
    let peer = |extra: Value| {
        let mut p = json!({"PublicKey": "nodekey:aa", "Active": true, "Relay": "fra"});
        p.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        let s =
            status(json!({"BackendState": "Running", "Peer": {"nodekey:aa": p}})).expect("read");
        s.peers[0].path.clone()
    };
    assert_eq!(
        peer(json!({})),
        Path::Relayed {
            region: "fra".into()
        }
    );
    assert_eq!(
        peer(json!({"PeerRelay": "192.0.2.1:7:vni:3"})),
        Path::PeerRelay {
            endpoint: "192.0.2.1:7:vni:3".into()
        }
    );
    assert_eq!(peer(json!({"Active": false})), Path::Idle);
}

#[test]
fn a_logged_out_host_has_no_peers_and_is_not_running() {
    let s = status(json!({
        "BackendState": "NeedsLogin", "AuthURL": "https://hs.example/register/x",
        "TailscaleIPs": null, "Self": {"PublicKey": "nodekey:bb", "InNetworkMap": false},
        "CurrentTailnet": null, "Peer": null, "User": null, "Health": null
    }))
    .expect("read");
    assert!(!s.running());
    assert!(s.peers.is_empty());
    assert_eq!(s.tailnet, None);
}

#[test]
fn a_malformed_peer_is_refused_alone_and_garbage_whole() {
    let s = status(json!({"BackendState": "Running", "Peer": {
        "nodekey:aa": {"PublicKey": "nodekey:aa", "TailscaleIPs": ["100.64.0.9"]},
        "nodekey:bb": {"PublicKey": "nodekey:bb", "TailscaleIPs": ["nope"]},
        "nodekey:cc": {"PublicKey": "mkey:cc"},
        "nodekey:dd": {"PublicKey": "nodekey:dd", "LastHandshake": 5}
    }}))
    .expect("read");
    assert_eq!(s.peers.len(), 1);
    let paths: Vec<_> = s.refused.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "Peer[\"nodekey:bb\"].TailscaleIPs[0]",
            "Peer[\"nodekey:cc\"].PublicKey",
            "Peer[\"nodekey:dd\"].LastHandshake"
        ]
    );
    assert_eq!(
        status(json!({"Peer": {}})).expect_err("refused").path,
        "BackendState"
    );
    assert_eq!(status(json!("Running")).expect_err("refused").path, "body");
}
