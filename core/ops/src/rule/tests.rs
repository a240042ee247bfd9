//! `rule`'s tests.

use super::*;

#[test]
fn a_bad_heal_rule_is_refused_at_its_field_and_limit() {
    let refused = |f: fn(&mut HealRule)| {
        let mut s = Settings::default();
        f(&mut s.heal[0]);
        s.check().unwrap_err()
    };
    let e = refused(|r| r.action = ActionTemplate::RaiseBudget { percent: 0 });
    assert_eq!(
        (e.path.as_str(), e.limit),
        ("heal[0].action.percent", Some(1000))
    );
    let e = refused(|r| {
        r.trigger = CauseKind::RunawaySpend;
        r.action = ActionTemplate::CapBudget { minutes: 61 };
    });
    assert_eq!(
        (e.path.as_str(), e.limit, e.reason.as_str()),
        (
            "heal[0].action.minutes",
            Some(60),
            "must be 1 to 60 minutes"
        )
    );
    let e = refused(|r| r.max_attempts = 9);
    assert_eq!(
        (e.path.as_str(), e.limit),
        ("heal[0].max_attempts", Some(3))
    );
    let e = refused(|r| r.concurrency = 0);
    assert_eq!(e.path, "heal[0].concurrency");
    let e = refused(|r| r.trigger = CauseKind::NodeDown);
    assert!(
        e.path == "heal[0].trigger" && e.reason.contains("node_down"),
        "{e}"
    );
    let e = refused(|r| r.matchers = vec!["bad matcher".into()]);
    assert!(e.path.starts_with("heal[0].matchers"), "{e}");
    let e = refused(|r| r.name = "no spaces".into());
    assert_eq!(e.path, "heal[0].name");
    let mut twice = Settings::default();
    twice.heal.push(twice.heal[0].clone());
    let last = twice.heal.len() - 1;
    assert_eq!(
        twice.check().unwrap_err().path,
        format!("heal[{last}].name")
    );
    let e = refused(|r| r.action = ActionTemplate::ReplayDead);
    assert!(
        e.path == "heal[0].trigger"
            && e.reason
                == "replay_dead heals outside_system_failing or poison_input, not budget_exhausted",
        "{e}"
    );
    // Settings written before heal rules existed get the shipped ones.
    let mut old: Settings = serde_json::from_value(serde_json::json!({"rules": []})).unwrap();
    assert_eq!(old.heal, HealRule::shipped());
    old.offer_shipped();
    assert_eq!(old.heal, HealRule::shipped(), "none twice");
    assert_eq!(old.offered, Settings::default().offered);
    // Saved with the rules shipped then: a rule shipped since is added
    // at the end, once; one a person took out is not put back.
    let shipped = HealRule::shipped();
    let saved = Settings {
        heal: vec![shipped[1].clone(), shipped[0].clone()],
        ..Settings::default()
    };
    let mut saved = serde_json::to_value(&saved).unwrap();
    saved.as_object_mut().unwrap().remove("offered");
    let mut saved: Settings = serde_json::from_value(saved).unwrap();
    saved.offer_shipped();
    let names: Vec<&str> = saved.heal.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "retire-lost-node",
            "raise-exhausted-budget",
            "drain-slow-node",
            "drain-slow-bot",
            "cap-runaway-spend",
            "rotate-exposed-credential"
        ],
        "replay-after-outside-failure was taken out; the drains, cap-runaway-spend and rotate-exposed-credential are new"
    );
    let once = saved.clone();
    saved.offer_shipped();
    assert_eq!(saved, once);
    saved.heal.truncate(2);
    saved.offer_shipped();
    assert_eq!(saved.heal.len(), 2, "taken out, they stay out");
    Settings::default()
        .check()
        .expect("the shipped settings hold");
}

fn labels(kv: &[(&str, &str)]) -> Labels {
    kv.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn matchers_read_as_alertmanager_writes_them() {
    let l = labels(&[("alertname", "LaneLag"), ("bot", "b12")]);
    for (m, want) in [
        ("alertname=\"LaneLag\"", true),
        ("alertname = LaneLag", true),
        ("alertname!=\"LaneLag\"", false),
        ("bot=~\"b[0-9]+\"", true),
        ("bot=~\"b1\"", false),
        ("bot!~\"x.*\"", true),
        ("node=\"\"", true),
        ("node!=\"\"", false),
    ] {
        assert_eq!(Matcher::parse(m).unwrap().matches(&l), want, "{m}");
    }
    assert!(Matcher::parse("bot").is_err());
    assert!(Matcher::parse("9bot=\"x\"").is_err());
    assert!(Matcher::parse("bot=~\"(\"").is_err());
}

#[test]
fn settings_are_refused_at_the_path_of_their_field() {
    assert!(Settings::default().check().is_ok());
    let base = Settings::default();
    let mut cases: Vec<(Settings, &str)> = Vec::new();
    let mut s = base.clone();
    s.rules[0].window_secs = 0;
    cases.push((s, "rules[0].window_secs"));
    let mut s = base.clone();
    s.rules[0].threshold = MAX_THRESHOLD + 1;
    cases.push((s, "rules[0].threshold"));
    let mut s = base.clone();
    s.rules[0].matchers = vec!["a=\"1\"".into(), "oops".into()];
    cases.push((s, "rules[0].matchers[1]"));
    let mut s = base.clone();
    s.rules[0].group_by = vec!["a-b".into()];
    cases.push((s, "rules[0].group_by[0]"));
    let mut s = base.clone();
    s.rules.push(s.rules[0].clone());
    cases.push((s, "rules[1].name"));
    let mut s = base.clone();
    s.fingerprint_by = vec![String::new()];
    cases.push((s, "fingerprint_by[0]"));
    for (s, path) in cases {
        assert_eq!(s.check().unwrap_err().path, path);
    }
}

#[test]
fn silences_need_a_reason_and_a_span() {
    let s = Silence {
        matchers: vec!["bot=\"b1\"".into()],
        starts_ms: 10,
        ends_ms: 5,
        comment: "deploy".into(),
    };
    assert_eq!(s.check().unwrap_err().path, "ends_ms");
    let s = Silence {
        ends_ms: 20,
        comment: " ".into(),
        ..s
    };
    assert_eq!(s.check().unwrap_err().path, "comment");
    let s = Silence {
        matchers: Vec::new(),
        comment: "x".into(),
        ..s
    };
    assert_eq!(s.check().unwrap_err().path, "matchers");
}
