use serde_json::json;

use super::*;
use crate::{headscale, tailscale};

fn fixture(name: &str) -> serde_json::Value {
    let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    crate::json(&std::fs::read(path).expect("fixture")).expect("fixture is JSON")
}

fn at(s: &str) -> UnixMs {
    s.parse::<jiff::Timestamp>().expect("time").as_millisecond()
}

fn find<'a>(nodes: &'a [MeshNode], name: &str) -> &'a MeshNode {
    nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

#[test]
fn the_control_servers_and_the_hosts_views_merge_by_node_key() {
    let control = headscale::nodes(fixture("headscale-0.28-nodes.json")).expect("nodes");
    let local = tailscale::status(fixture("tailscale-status.json")).expect("status");
    let nodes = merge(&control.nodes, Some(&local), at("2026-12-04T10:01:00Z"));
    assert_eq!(nodes.len(), 4, "every peer matched a control node");
    let ctl = find(&nodes, "controller");
    assert!(ctl.local.as_ref().is_some_and(|l| l.is_self));
    assert_eq!(ctl.status, NodeStatus::Online);
    let n1 = find(&nodes, "n1");
    assert_eq!(n1.status, NodeStatus::Online);
    assert!(matches!(
        n1.local.as_ref().map(|l| &l.path),
        Some(Path::Direct { .. })
    ));
    assert!(n1.disagreements.is_empty(), "{:?}", n1.disagreements);
    assert_eq!(find(&nodes, "n2").status, NodeStatus::Offline);
}

#[test]
fn where_the_two_disagree_it_is_flagged() {
    let mut control = headscale::nodes(fixture("headscale-0.28-nodes.json"))
        .expect("nodes")
        .nodes;
    // The control server says n2 is online and tags it otherwise.
    control[2].online = Some(true);
    control[2].tags = vec!["tag:gpu".into()];
    // n1: the control server says offline, this host handshook 20 s ago.
    control[1].online = Some(false);
    let mut local = tailscale::status(fixture("tailscale-status.json")).expect("status");
    // A peer the control server does not list.
    let mut stranger = local.peers[0].clone();
    stranger.node_key = "nodekey:ff".into();
    stranger.host_name = "stranger".into();
    stranger.addresses = vec!["100.64.0.99".parse().expect("ip")];
    local.peers.push(stranger);
    // And one it lists that this host does not know.
    control.push(headscale::ControlNode {
        id: 99,
        name: "ghost".into(),
        given_name: "ghost".into(),
        node_key: "nodekey:ee".into(),
        ..control[3].clone()
    });
    let nodes = merge(&control, Some(&local), at("2026-12-04T10:01:00Z"));
    let n2 = find(&nodes, "n2");
    assert!(
        n2.disagreements
            .contains(&Disagreement::ControlOnlineLocalOffline)
    );
    assert!(
        n2.disagreements
            .iter()
            .any(|d| matches!(d, Disagreement::TagsDiffer { .. }))
    );
    let n1 = find(&nodes, "n1");
    assert_eq!(
        n1.disagreements,
        [Disagreement::ControlOfflineLocalHandshake { age_ms: 20_000 }]
    );
    assert_eq!(
        n1.status,
        NodeStatus::Online,
        "a fresh handshake is a live link"
    );
    assert_eq!(
        find(&nodes, "ghost").disagreements,
        [Disagreement::MissingLocally]
    );
    assert_eq!(
        find(&nodes, "stranger").disagreements,
        [Disagreement::UnknownToControl]
    );
}

#[test]
fn an_expired_key_and_an_unknown_state_are_said_so() {
    let mut control = headscale::nodes(fixture("headscale-0.26-nodes.json"))
        .expect("nodes")
        .nodes;
    control[1].expiry_ms = Some(at("2026-12-01T00:00:00Z"));
    control[3].online = None;
    let mut nodes = merge(&control, None, at("2026-12-04T10:01:00Z"));
    assert_eq!(nodes[1].status, NodeStatus::Expired);
    assert_eq!(
        nodes[3].status,
        NodeStatus::Unknown,
        "nothing says either way"
    );
    assert!(
        nodes[3].disagreements.is_empty(),
        "no host view, nothing missing from it"
    );
    measured(&mut nodes[3], Some(0.8));
    assert_eq!(nodes[3].status, NodeStatus::Online);
}

#[test]
fn a_static_list_is_read_and_a_bad_entry_is_refused_alone() {
    let (nodes, refused) = static_list(json!([
        {"name": "n1", "addresses": ["100.64.0.2"], "tags": ["tag:oshal-node"]},
        {"name": "n2", "addresses": ["100.64.0.300"]},
        {"name": "n3", "addresses": [], "colour": "red"}
    ]))
    .expect("read");
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].status, NodeStatus::Unknown);
    let paths: Vec<_> = refused.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["[1].addresses[0]", "[2].colour"]);
    assert_eq!(static_list(json!({})).expect_err("refused").path, "body");
}

#[test]
fn a_stopped_daemon_is_no_evidence_of_life() {
    let control = headscale::nodes(fixture("headscale-0.28-nodes.json"))
        .expect("nodes")
        .nodes;
    let mut local = tailscale::status(fixture("tailscale-status.json")).expect("status");
    local.backend_state = "Stopped".into();
    let mut quiet = control.clone();
    for n in &mut quiet {
        n.online = None;
    }
    let nodes = merge(&quiet, Some(&local), at("2026-12-04T10:01:00Z"));
    for n in &nodes {
        assert_eq!(
            n.status,
            NodeStatus::Unknown,
            "{}: a stopped host says nothing",
            n.name
        );
        assert!(
            n.disagreements.is_empty(),
            "{}: {:?}",
            n.name,
            n.disagreements
        );
    }
    // The control server's own word still holds.
    let nodes = merge(&control, Some(&local), at("2026-12-04T10:01:00Z"));
    assert_eq!(find(&nodes, "n1").status, NodeStatus::Online);
    assert_eq!(find(&nodes, "n2").status, NodeStatus::Offline);
}
