use std::collections::BTreeSet;

use super::*;

fn text() -> String {
    std::fs::read_to_string(format!(
        "{}/fixtures/policy.hujson",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn node(name: &str, user: Option<&str>, tags: &[&str], ip: &str) -> Subject {
    Subject {
        name: name.into(),
        user: user.map(Into::into),
        tags: tags.iter().map(|t| (*t).into()).collect(),
        addresses: vec![ip.parse().expect("ip")],
    }
}

fn fleet() -> Vec<Subject> {
    vec![
        node("controller", None, &["tag:oshal-controller"], "100.64.0.1"),
        node("n1", None, &["tag:oshal-node"], "100.64.0.2"),
        node("laptop", Some("alice"), &[], "100.64.0.4"),
        node("guest", Some("bob"), &[], "100.64.0.5"),
    ]
}

fn services() -> Vec<Service> {
    let ctl = "100.64.0.1".parse().expect("ip");
    vec![
        Service {
            name: "controller".into(),
            address: ctl,
            port: 8080,
        },
        Service {
            name: "redis".into(),
            address: ctl,
            port: 6379,
        },
    ]
}

fn reach(m: &Matrix) -> Vec<(String, Vec<bool>)> {
    m.rows
        .iter()
        .map(|r| {
            (
                r.node.clone(),
                r.cells.iter().map(|c| c.allowed()).collect(),
            )
        })
        .collect()
}

#[test]
fn the_matrix_says_who_reaches_the_controller_and_redis_and_by_which_rule() {
    let p = parse(&text()).expect("HuJSON with comments and trailing commas");
    let m = p.matrix(&fleet(), &services());
    assert_eq!(
        reach(&m),
        [
            ("controller".to_owned(), vec![false, false]),
            ("n1".to_owned(), vec![true, true]),
            ("laptop".to_owned(), vec![true, true]),
            ("guest".to_owned(), vec![false, false]),
        ]
    );
    assert_eq!(m.rows[1].cells[0].rule, Some(0));
    assert_eq!(m.rows[2].cells[0].rule, Some(1), "alice@ via group:ops");
}

#[test]
fn a_tagged_node_is_not_its_users_and_the_autogroups_tell_them_apart() {
    let p = parse(
        r#"{"tagOwners": {"tag:oshal-node": []},
            "acls": [{"action": "accept", "src": ["alice@"], "dst": ["*:8080"]},
                     {"action": "accept", "src": ["autogroup:tagged"], "dst": ["100.64.0.1:6379"]}]}"#,
    )
    .expect("parse");
    let tagged_alice = node("n9", Some("alice"), &["tag:oshal-node"], "100.64.0.9");
    let nodes = [
        tagged_alice.clone(),
        node("laptop", Some("alice"), &[], "100.64.0.4"),
    ];
    let m = p.matrix(&nodes, &services());
    assert_eq!(
        reach(&m),
        [
            ("n9".to_owned(), vec![false, true]),
            ("laptop".to_owned(), vec![true, false])
        ]
    );
}

#[test]
fn ports_and_addresses_are_matched_as_written() {
    let p = parse(
        r#"{"acls": [{"action": "accept", "src": ["100.64.0.0/24"], "dst": ["100.64.0.1:6000-6400,9000", "[fd7a:115c:a1e0::1]:*"]}]}"#,
    )
    .expect("parse");
    let svc = |port| Service {
        name: "x".into(),
        address: "100.64.0.1".parse().expect("ip"),
        port,
    };
    let n = node("n", None, &[], "100.64.0.2");
    assert!(p.allows(&n, &svc(6379), &[]).is_some());
    assert!(p.allows(&n, &svc(9000), &[]).is_some());
    assert!(p.allows(&n, &svc(8080), &[]).is_none());
    let far = node("far", None, &[], "100.64.1.2");
    assert!(p.allows(&far, &svc(6379), &[]).is_none());
}

#[test]
fn a_policy_that_names_what_does_not_exist_is_refused_at_the_field() {
    for (policy, path) in [
        (
            r#"{"acls": [{"action": "accept", "src": ["tag:ghost"], "dst": ["*:*"]}]}"#,
            "acls[0].src[0]",
        ),
        (
            r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["group:none:*"]}]}"#,
            "acls[0].dst[0]",
        ),
        (
            r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["tag:x"]}]}"#,
            "acls[0].dst[0]",
        ),
        (
            r#"{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:0"]}]}"#,
            "acls[0].dst[0]",
        ),
        (
            r#"{"acls": [{"action": "drop", "src": ["*"], "dst": ["*:*"]}]}"#,
            "acls[0].action",
        ),
        (
            r#"{"acls": [{"action": "accept", "src": ["somewhere"], "dst": ["*:*"]}]}"#,
            "acls[0].src[0]",
        ),
        (
            r#"{"acls": [{"action": "accept", "dst": ["*:*"]}]}"#,
            "acls[0].src",
        ),
        (r#"{"hosts": {"db": "10.0.0.300"}}"#, "hosts.db"),
        (r#"{"groups": {"ops": []}}"#, "groups.ops"),
        (r#"{"acls": [ oops ]}"#, "policy"),
        (
            r#"{"acls": [{"action": "accept", "src": ["autogroup:internet"], "dst": ["*:*"]}]}"#,
            "acls[0].src[0]",
        ),
        (r#"{"ACLs": [], "acls": []}"#, "acls"),
    ] {
        assert_eq!(parse(policy).expect_err(policy).path, path, "{policy}");
    }
}

#[test]
fn a_change_lists_the_cells_it_turns_and_counts_the_nodes_it_cuts() {
    let current = parse(&text()).expect("parse");
    let next = text().replace(r#""redis:6379""#, r#""redis:6380""#);
    let c = check(Before::Policy(&current), &next, &fleet(), &services()).expect("checked");
    assert_eq!(c.before, BeforeKind::Policy);
    assert_eq!(
        c.turned,
        [Turned {
            node: "n1".into(),
            service: "redis".into(),
            now: false
        }]
    );
    assert_eq!(c.cuts, 1);
    let same = check(Before::Policy(&current), &text(), &fleet(), &services()).expect("checked");
    assert!(same.turned.is_empty());
    assert_eq!(same.cuts, 0);
    assert!(
        parse(r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}"#)
            .expect("parse")
            .matrix(&fleet(), &services())
            .grants_not_evaluated
    );
}

#[test]
fn without_a_known_policy_in_force_every_cell_closed_is_a_cut() {
    // No policy stored: everything reaches everything today, so the first
    // policy cuts whoever it leaves out.
    let first = check(Before::AllowAll, &text(), &fleet(), &services()).expect("checked");
    assert_eq!(first.before, BeforeKind::AllowAll);
    let cut: BTreeSet<_> = first.turned.iter().map(|t| t.node.as_str()).collect();
    assert_eq!(cut, BTreeSet::from(["controller", "guest"]));
    assert_eq!(first.cuts, 2);
    // The policy in force could not be read (or has grants): the same.
    let unknown = check(Before::Unknown, &text(), &fleet(), &services()).expect("checked");
    assert_eq!((unknown.before, unknown.cuts), (BeforeKind::Unknown, 2));
    let granted =
        parse(r#"{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]}"#).expect("parse");
    let with_grants =
        check(Before::Policy(&granted), &text(), &fleet(), &services()).expect("checked");
    assert_eq!(with_grants.before, BeforeKind::Unknown);
    assert_eq!(with_grants.cuts, 2);
}

#[test]
fn keys_are_read_without_regard_to_case_and_users_match_exactly() {
    let p = parse(
        r#"{"TagOwners": {"tag:oshal-node": []},
            "ACLs": [{"action": "accept", "src": ["alice@example.com"], "dst": ["*:8080"]}]}"#,
    )
    .expect("parse");
    assert_eq!(p.rules.len(), 1);
    assert!(p.tag_owners.contains_key("tag:oshal-node"));
    // `alice@example.com` is not the user named `alice`.
    let named = node("laptop", Some("alice"), &[], "100.64.0.4");
    let mailed = node("phone", Some("alice@example.com"), &[], "100.64.0.6");
    assert!(p.allows(&named, &services()[0], &[]).is_none());
    assert!(p.allows(&mailed, &services()[0], &[]).is_some());
}
