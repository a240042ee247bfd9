use super::*;
use serde_json::json;

fn field_of(err: TicketError) -> &'static str {
    match err {
        TicketError::Invalid { field, .. } | TicketError::TooLarge { field, .. } => field,
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn chat_submission_validates_with_defaults() {
    let v = NewTicket::chat("hello").validate().unwrap();
    assert_eq!(v.tenant.as_str(), "default");
    assert_eq!(v.skill.as_str(), "chat");
    assert_eq!(v.priority, 5);
    assert_eq!(v.max_attempts, DEFAULT_MAX_ATTEMPTS);
    assert_eq!(
        *v.work,
        Work::Chat(ChatPayload {
            prompt: "hello".into(),
            system: None,
            max_tokens: None,
            response_schema: None,
        })
    );
}

#[test]
fn each_bad_field_is_named() {
    let base = NewTicket::chat("hi");
    let cases: Vec<(NewTicket, &str)> = vec![
        (
            NewTicket {
                kind: "teleport".into(),
                ..base.clone()
            },
            "kind",
        ),
        (
            NewTicket {
                payload: json!({"prompt": 3}),
                ..base.clone()
            },
            "payload",
        ),
        (
            NewTicket {
                payload: json!({"prompt": "x", "extra": 1}),
                ..base.clone()
            },
            "payload",
        ),
        (
            NewTicket {
                payload: json!({"prompt": "  "}),
                ..base.clone()
            },
            "payload.prompt",
        ),
        (
            NewTicket {
                payload: json!({"prompt": "x", "max_tokens": 0}),
                ..base.clone()
            },
            "payload.max_tokens",
        ),
        (
            NewTicket {
                tenant: Some("no spaces".into()),
                ..base.clone()
            },
            "tenant",
        ),
        (
            NewTicket {
                tenant: Some("x".repeat(65)),
                ..base.clone()
            },
            "tenant",
        ),
        (
            NewTicket {
                idempotency_key: Some(String::new()),
                ..base.clone()
            },
            "idempotency_key",
        ),
        (
            NewTicket {
                idempotency_key: Some("k".repeat(129)),
                ..base.clone()
            },
            "idempotency_key",
        ),
        (
            NewTicket {
                priority: Some(10),
                ..base.clone()
            },
            "priority",
        ),
        (
            NewTicket {
                max_attempts: Some(0),
                ..base.clone()
            },
            "max_attempts",
        ),
        (
            NewTicket {
                max_attempts: Some(11),
                ..base.clone()
            },
            "max_attempts",
        ),
        (
            NewTicket {
                skill: Some("".into()),
                ..base.clone()
            },
            "skill",
        ),
        (
            NewTicket {
                parent_id: Some("nope".into()),
                ..base.clone()
            },
            "parent_id",
        ),
        (
            NewTicket {
                causation_id: Some("nope".into()),
                ..base.clone()
            },
            "causation_id",
        ),
    ];
    for (ticket, field) in cases {
        let err = ticket
            .clone()
            .validate()
            .expect_err(&format!("{ticket:?} must be refused"));
        assert_eq!(field_of(err), field, "{ticket:?}");
    }
}

#[test]
fn payload_limit_is_exact() {
    // {"prompt":"…"} is 13 bytes of framing around the prompt.
    let at_limit = NewTicket::chat("a".repeat(MAX_PAYLOAD_BYTES - 13));
    assert!(at_limit.validate().is_ok());
    let over = NewTicket::chat("a".repeat(MAX_PAYLOAD_BYTES - 12));
    match over.validate() {
        Err(TicketError::TooLarge {
            field: "payload",
            limit,
            actual,
        }) => {
            assert_eq!(limit, MAX_PAYLOAD_BYTES);
            assert_eq!(actual, MAX_PAYLOAD_BYTES + 1);
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

fn fresh(max_attempts: u32) -> Ticket {
    let v = NewTicket {
        max_attempts: Some(max_attempts),
        ..NewTicket::chat("x")
    }
    .validate()
    .unwrap();
    Ticket::create(TicketId::new(), v, 1_000).0
}

#[test]
fn route_starts_an_attempt_and_records_the_bot() {
    let mut t = fresh(3);
    let bot = BotId::parse("bot-01").unwrap();
    let tr = t
        .apply(TransitionKind::Route, Some(&bot), "least loaded", 1_001)
        .unwrap();
    assert_eq!(
        (tr.from, tr.to, tr.attempt),
        (Some(TicketState::Queued), TicketState::Routed, 1)
    );
    assert_eq!(tr.bot, Some(bot));
    assert_eq!(t.updated_at_ms, 1_001);
}

#[test]
fn retry_needs_attempts_left_and_illegal_moves_change_nothing() {
    let mut t = fresh(1);
    let bot = BotId::parse("b").unwrap();
    t.apply(TransitionKind::Route, Some(&bot), "", 1).unwrap();
    t.apply(TransitionKind::Start, None, "", 2).unwrap();
    t.apply(TransitionKind::Fail, None, "boom", 3).unwrap();
    let before = t.clone();
    assert!(matches!(
        t.apply(TransitionKind::Retry, None, "", 4),
        Err(TicketError::AttemptsExhausted {
            attempts: 1,
            max: 1,
            ..
        })
    ));
    assert!(matches!(
        t.apply(TransitionKind::Succeed, None, "", 4),
        Err(TicketError::IllegalTransition {
            from: TicketState::Failed,
            event: TransitionKind::Succeed,
            ..
        })
    ));
    assert_eq!(t, before, "a refused transition changes nothing");
    t.apply(TransitionKind::GiveUp, None, "no attempts left", 5)
        .unwrap();
    assert!(t.state.is_terminal());
}

#[test]
fn correlation_follows_the_parent() {
    let parent = TicketId::new();
    let v = NewTicket {
        parent_id: Some(parent.to_string()),
        ..NewTicket::chat("child")
    }
    .validate()
    .unwrap();
    let (child, created) = Ticket::create(TicketId::new(), v, 0);
    assert_eq!(child.correlation_id, parent);
    assert_eq!(child.causation_id, Some(parent));
    assert_eq!(created.from, None);
    assert_eq!(created.reason, "submitted");
}

#[test]
fn approval_holds_a_ticket_until_approved() {
    let v = NewTicket {
        requires_approval: true,
        ..NewTicket::chat("x")
    }
    .validate()
    .unwrap();
    let (mut t, _) = Ticket::create(TicketId::new(), v, 0);
    assert_eq!(t.state, TicketState::AwaitingApproval);
    assert!(t.apply(TransitionKind::Route, None, "", 1).is_err());
    t.apply(TransitionKind::Approve, None, "operator approved", 1)
        .unwrap();
    assert_eq!(t.state, TicketState::Queued);
}

/// A prompt holding U+0000 reached PostgreSQL, which refused it; the writer
/// retried the batch without end and every tenant's submissions were refused.
#[test]
fn a_nul_anywhere_in_a_payload_is_refused_naming_its_field() {
    let cases = [
        (
            json!({"prompt": "a\u{0}b"}),
            "chat",
            "payload.prompt",
            "payload.prompt holds",
        ),
        (
            json!({"prompt": "ok", "system": "\u{0}"}),
            "chat",
            "payload.system",
            "payload.system holds",
        ),
        (
            json!({"connector": "c", "operation": "o", "params": {"note": ["x", "y\u{0}"]}}),
            "tool",
            "payload.params",
            "payload.params.note[1] holds",
        ),
    ];
    for (payload, kind, field, says) in cases {
        let err = NewTicket {
            kind: kind.into(),
            payload,
            ..NewTicket::default()
        }
        .validate()
        .unwrap_err();
        let message = err.to_string();
        assert_eq!(field_of(err), field);
        assert!(message.contains(says), "{message}");
        assert!(message.contains("U+0000"), "{message}");
    }
}

#[test]
fn an_investigation_names_the_field_that_is_out_of_bounds() {
    let good = serde_json::json!({
        "incident": "INC-1", "alert": "OshalNodeLost", "connector": "oshal-ops",
        "calls": [{"operation": "get_bots"}, {"operation": "list_changes", "params": {"since_ms": 5}}],
        "max_steps": 4, "max_wall_ms": 60000, "max_tokens": 512
    });
    let Work::Investigate(p) = Work::parse("investigate", good.clone()).unwrap() else {
        panic!("an investigation")
    };
    assert_eq!(
        p.calls[0].params,
        serde_json::json!({}),
        "params default to {{}}"
    );
    let refused = |path: &str, value: serde_json::Value| {
        let mut bad = good.clone();
        bad[path] = value;
        field_of(Work::parse("investigate", bad).unwrap_err())
    };
    assert_eq!(refused("incident", "".into()), "payload.incident");
    assert_eq!(
        refused("connector", "Oshal Ops".into()),
        "payload.connector"
    );
    assert_eq!(refused("calls", serde_json::json!([])), "payload.calls");
    assert_eq!(
        refused(
            "calls",
            serde_json::json!([{"operation": "get_bots", "params": [1]}])
        ),
        "payload.calls"
    );
    assert_eq!(
        refused("max_steps", 1.into()),
        "payload.max_steps",
        "fewer than planned"
    );
    assert_eq!(refused("max_wall_ms", 0.into()), "payload.max_wall_ms");
    assert_eq!(refused("max_tokens", 100_001.into()), "payload.max_tokens");
    assert_eq!(refused("extra", 1.into()), "payload");
    let mut many = good.clone();
    many["calls"] =
        serde_json::Value::Array(vec![serde_json::json!({"operation": "get_bots"}); 33]);
    many["max_steps"] = 32.into();
    assert_eq!(
        field_of(Work::parse("investigate", many).unwrap_err()),
        "payload.calls"
    );
}
