//! Rows the adapters' tests write: a fresh ticket, a ledger row, a whole
//! ticket's life in one batch.

#![allow(clippy::unwrap_used)] // test support: a failure is the test's

use super::{TicketUpdate, WriteBatch};
use crate::cost::LedgerEntry;
use crate::ticket::{BotId, ModelId, NewTicket, Ticket, TicketId, Transition, TransitionKind};

/// A new chat ticket of `tenant`, with its creating transition (its
/// gate decision at 999).
pub fn ticket(tenant: &str, key: Option<&str>) -> (Ticket, Transition) {
    let v = NewTicket {
        tenant: Some(tenant.into()),
        idempotency_key: key.map(Into::into),
        gate_at_ms: Some(999),
        ..NewTicket::chat("hello")
    }
    .validate()
    .unwrap();
    Ticket::create(TicketId::new(), v, 1_000)
}

/// The ledger row of attempt `attempt` of `t`, costing `cost` nano-dollars.
pub fn ledger(t: &Ticket, attempt: u32, cost: i64) -> LedgerEntry {
    LedgerEntry {
        ticket: t.id,
        attempt,
        tenant: t.tenant.clone(),
        bot: BotId::parse("bot-01").unwrap(),
        model: ModelId::parse("builtin").unwrap(),
        input_tokens: 10,
        output_tokens: 5,
        cost_nusd: cost,
        unpriced: false,
        price_version: "v".into(),
        at_ms: 86_400_000,
    }
}

/// One batch that creates a ticket of `tenant` and carries it through to
/// `succeeded`, priced at `cost`: every kind of row a batch holds.
pub fn finished_batch(tenant: &str, key: Option<&str>, cost: i64) -> (Ticket, WriteBatch) {
    let (mut t, created) = ticket(tenant, key);
    let mut batch = WriteBatch {
        new_tickets: vec![t.clone()],
        transitions: vec![created],
        ..Default::default()
    };
    let bot = BotId::parse("bot-01").unwrap();
    for (kind, bot) in [
        (TransitionKind::Route, Some(&bot)),
        (TransitionKind::Start, None),
        (TransitionKind::Succeed, None),
    ] {
        batch
            .transitions
            .push(t.apply(kind, bot, "step", 1_001).unwrap());
        batch.updates.push(TicketUpdate::of(&t));
    }
    batch.ledger.push(ledger(&t, 1, cost));
    batch.coalesce();
    (t, batch)
}

/// How PostgreSQL refuses a NUL, for stores in tests that refuse data the
/// same way: a batch carrying "poison" in a result, or "poison pill" in a
/// payload, is refused.
pub fn refuse_poison(batch: &WriteBatch) -> Result<(), crate::StoreError> {
    let poisoned = batch
        .updates
        .iter()
        .filter_map(|u| u.result.as_ref())
        .any(|r| r.to_string().contains("poison"))
        || batch
            .new_tickets
            .iter()
            .any(|t| t.work.payload_json().to_string().contains("poison pill"));
    match poisoned {
        true => Err(crate::StoreError::Rejected {
            code: "22P05".into(),
            message: "unsupported Unicode escape sequence".into(),
        }),
        false => Ok(()),
    }
}

/// What both adapters must agree on for tenant-scoped reads and API
/// tokens: two tenants' finished tickets, then each read scoped to one
/// tenant sees that tenant's alone (the other's ticket is `None`, as if it
/// did not exist), and a token is stored as given, listed, and revoked once.
pub async fn scoped_reads_and_tokens(store: &dyn super::Store) {
    use crate::ticket::TenantId;
    let tenants = [
        TenantId::parse("acme").unwrap(),
        TenantId::parse("globex").unwrap(),
    ];
    let mut tickets = Vec::new();
    for (tenant, cost) in tenants.iter().zip([30, 70]) {
        let (t, mut batch) = finished_batch(tenant.as_str(), None, cost);
        batch.tenants.push(super::Tenant {
            id: tenant.clone(),
            budget_nusd: None,
            created_at_ms: 1,
        });
        store.apply(&batch).await.unwrap();
        tickets.push(t);
    }
    let (acme, globex) = (&tenants[0], &tenants[1]);
    assert!(
        store
            .ticket(tickets[0].id, Some(acme))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .ticket(tickets[1].id, Some(acme))
            .await
            .unwrap()
            .is_none(),
        "another tenant's ticket reads as absent"
    );
    assert!(store.ticket(tickets[1].id, None).await.unwrap().is_some());
    // Read together, each ticket is as read alone; another tenant's and
    // an unknown id are left out.
    let ids = [tickets[0].id, tickets[1].id, crate::ticket::TicketId::new()];
    let mut both = store.tickets_by_id(&ids, None).await.unwrap();
    both.sort_by_key(|v| v.id);
    let mut alone = Vec::new();
    for t in &tickets {
        alone.push(store.ticket(t.id, None).await.unwrap().unwrap());
    }
    alone.sort_by_key(|v| v.id);
    assert_eq!(both.len(), 2);
    for (b, a) in both.iter().zip(&alone) {
        assert_eq!(b, a);
        assert_eq!(a.gate_at_ms, Some(999), "the gate's time round-trips");
        assert!(!b.events.is_empty() && !b.ledger.is_empty(), "{b:?}");
    }
    // Their ends, read narrowly, tell what the whole views tell; a ticket
    // that never ran has no start and costs nothing.
    let (queued, created) = ticket(acme.as_str(), None);
    store
        .apply(&WriteBatch {
            new_tickets: vec![queued.clone()],
            transitions: vec![created],
            ..Default::default()
        })
        .await
        .unwrap();
    let waiting = store.ticket_ends(&[queued.id], None).await.unwrap();
    assert_eq!(
        (
            waiting.len(),
            waiting[0].started_at_ms,
            waiting[0].cost_nusd
        ),
        (1, None, 0),
        "{waiting:?}"
    );
    assert_eq!(
        waiting[0],
        super::TicketEnd::of(&store.ticket(queued.id, None).await.unwrap().unwrap())
    );
    let mut ends = store.ticket_ends(&ids, None).await.unwrap();
    ends.sort_by_key(|e| e.id);
    assert_eq!(
        ends,
        alone.iter().map(super::TicketEnd::of).collect::<Vec<_>>()
    );
    assert!(
        ends.iter()
            .all(|e| e.started_at_ms.is_some() && e.cost_nusd > 0),
        "{ends:?}"
    );
    let mine = store.ticket_ends(&ids, Some(acme)).await.unwrap();
    assert_eq!(
        mine.iter().map(|e| e.id).collect::<Vec<_>>(),
        [tickets[0].id]
    );
    let mine = store.tickets_by_id(&ids, Some(acme)).await.unwrap();
    assert_eq!(
        mine.iter().map(|v| v.id).collect::<Vec<_>>(),
        [tickets[0].id]
    );
    let cost = store.cost_summary(Some(globex)).await.unwrap();
    assert_eq!(cost.total.cost_nusd, 70);
    assert_eq!(cost.by_tenant.len(), 1);
    assert_eq!(cost.by_tenant[0].key, "globex");
    assert_eq!(store.cost_summary(None).await.unwrap().total.cost_nusd, 100);
    let counts = store.state_counts(Some(acme)).await.unwrap();
    assert_eq!(
        counts.iter().map(|(_, n)| n).sum::<i64>(),
        2,
        "the finished ticket and the queued one"
    );
    let all = store.state_counts(None).await.unwrap();
    assert_eq!(all.iter().map(|(_, n)| n).sum::<i64>(), 3);

    let token = super::TokenRecord {
        id: "tok_0123456789abcdef".into(),
        tenant: acme.clone(),
        role: super::TokenRole::Viewer,
        label: "dashboards".into(),
        hash: "ab".repeat(32),
        created_at_ms: 5,
        revoked_at_ms: None,
    };
    store.add_api_token(&token).await.unwrap();
    let again = store.add_api_token(&token).await.unwrap_err();
    assert!(
        again.is_permanent(),
        "a second token with one id is refused: {again}"
    );
    assert_eq!(store.api_tokens().await.unwrap(), vec![token.clone()]);
    assert!(store.revoke_api_token(&token.id, 9).await.unwrap());
    assert!(!store.revoke_api_token(&token.id, 10).await.unwrap());
    assert!(!store.revoke_api_token("tok_none", 10).await.unwrap());
    let listed = store.api_tokens().await.unwrap();
    assert_eq!(listed[0].revoked_at_ms, Some(9));
}

/// A desk journal on any adapter: entries come back in session and `seq`
/// order, a tenant reads only its sessions' entries, a number written once
/// cannot be written again, and a bad entry is refused by field.
pub async fn journal(store: &dyn super::Store) {
    use super::JournalEntry;
    use crate::ticket::TenantId;
    let (acme, globex) = (
        TenantId::parse("acme").unwrap(),
        TenantId::parse("globex").unwrap(),
    );
    let mut batch = super::WriteBatch::default();
    for t in [&acme, &globex] {
        batch.tenants.push(super::Tenant {
            id: t.clone(),
            budget_nusd: None,
            created_at_ms: 1,
        });
    }
    store.apply(&batch).await.unwrap();
    let entry = |session: &str, seq, tenant: &TenantId, kind: &str| JournalEntry {
        book: "desk".into(),
        session: session.into(),
        seq,
        tenant: tenant.clone(),
        kind: kind.into(),
        body: format!(r#"{{"n":{seq}}}"#),
        at_ms: 10 + i64::from(seq),
    };
    assert_eq!(
        store
            .append_journal(&[
                entry("ds-b", 0, &globex, "opened"),
                entry("ds-a", 1, &acme, "kill")
            ])
            .await
            .unwrap(),
        2,
        "one transaction across tenants"
    );
    assert_eq!(
        store
            .append_journal(&[entry("ds-a", 0, &acme, "opened")])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .append_journal(&[entry("ds-a", 1, &acme, "other")])
            .await
            .unwrap(),
        0,
        "a number is written once"
    );
    assert_eq!(
        store
            .append_journal(&[
                entry("ds-a", 2, &acme, "kill"),
                entry("ds-a", 1, &acme, "kill")
            ])
            .await
            .unwrap(),
        0,
        "all or nothing: one number taken writes none"
    );
    // A long batch (many statements' worth) is whole too, and all or
    // nothing when its last entry's number is taken.
    let long = |session: &str, seq| JournalEntry {
        book: "long".into(),
        ..entry(session, seq, &acme, "tick")
    };
    let first: Vec<JournalEntry> = (0..599).map(|i| long("l-1", i)).collect();
    assert_eq!(store.append_journal(&first).await.unwrap(), 599);
    let again: Vec<JournalEntry> = (0..600)
        .map(|i| long("l-2", i))
        .chain([long("l-1", 0)])
        .collect();
    assert_eq!(store.append_journal(&again).await.unwrap(), 0);
    assert_eq!(store.journal("long", None).await.unwrap(), first);
    let mut run = entry("wf-1", 0, &acme, "run_started");
    run.book = "workflow".into();
    assert_eq!(
        store
            .append_journal(std::slice::from_ref(&run))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.journal("workflow", None).await.unwrap(),
        [run],
        "a book is read alone"
    );
    let all = store.journal("desk", None).await.unwrap();
    let keys: Vec<_> = all.iter().map(|e| (e.session.as_str(), e.seq)).collect();
    assert_eq!(keys, [("ds-a", 0), ("ds-a", 1), ("ds-b", 0)]);
    assert_eq!(
        all[1],
        entry("ds-a", 1, &acme, "kill"),
        "the first write stands"
    );
    let mine = store.journal("desk", Some(&globex)).await.unwrap();
    let one = store.journal_of("desk", "ds-a", &acme).await.unwrap();
    assert_eq!(
        one,
        [
            entry("ds-a", 0, &acme, "opened"),
            entry("ds-a", 1, &acme, "kill")
        ]
    );
    assert!(
        store
            .journal_of("desk", "ds-a", &globex)
            .await
            .unwrap()
            .is_empty(),
        "another tenant's session reads as empty"
    );
    assert_eq!(mine, [entry("ds-b", 0, &globex, "opened")]);

    let good = entry("ds-c", 1, &acme, "kill");
    let mut bad = entry("ds-c", 0, &acme, "opened");
    bad.body = "a\0b".into();
    let err = store
        .append_journal(&[good.clone(), bad.clone()])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("body"), "{err}");
    bad.body = "{}".into();
    bad.session = "x".repeat(65);
    let err = store.append_journal(&[good, bad]).await.unwrap_err();
    assert!(err.to_string().contains("session"), "{err}");
    assert_eq!(
        store.journal("desk", None).await.unwrap().len(),
        3,
        "nothing half-written"
    );
}

/// What both adapters must agree on for tagged tickets: a tag matches a
/// key's exact prefix (no other case, no longer segment), scoped to a
/// tenant when asked; a clear takes only ended tickets (where the store
/// `removes` at all, else it counts them as kept) and never their ledger
/// rows.
pub async fn tagged(store: &dyn super::Store, removes: bool) {
    use crate::ticket::{TenantId, TicketState};
    use crate::{Cleared, Tag, TicketQuery};
    let acme = TenantId::parse("acme").unwrap();
    let mut batch = WriteBatch::default();
    for tenant in ["acme", "globex"] {
        batch.tenants.push(super::Tenant {
            id: TenantId::parse(tenant).unwrap(),
            budget_nusd: None,
            created_at_ms: 1,
        });
    }
    let mut ended = Vec::new();
    for (tenant, key) in [
        ("acme", "tour:t1:a"),
        ("globex", "tour:t1:c"),
        ("acme", "tour:t10:x"),
        ("acme", "Tour:t1:z"),
    ] {
        let (t, b) = finished_batch(tenant, Some(key), 30);
        batch.absorb(b);
        ended.push(t);
    }
    let (running, created) = ticket("acme", Some("tour:t1:b"));
    batch.new_tickets.push(running.clone());
    batch.transitions.push(created);
    store.apply(&batch).await.unwrap();

    let tag = Tag::parse("tour:t1:").unwrap();
    let listed = |only: Option<TenantId>| {
        let tag = tag.clone();
        async move {
            let page = store
                .tickets(&TicketQuery {
                    tenant: only,
                    tag: Some(tag),
                    limit: 100,
                    ..TicketQuery::default()
                })
                .await
                .unwrap();
            let mut ids: Vec<_> = page.tickets.iter().map(|t| t.id).collect();
            ids.sort();
            ids
        }
    };
    let mut want = vec![ended[0].id, ended[1].id, running.id];
    want.sort();
    assert_eq!(listed(None).await, want, "the exact prefix, every tenant");
    let mut want = vec![ended[0].id, running.id];
    want.sort();
    assert_eq!(listed(Some(acme.clone())).await, want, "one tenant's");

    let cleared = store.clear_tagged(&tag, Some(&acme)).await.unwrap();
    let expect = |n: u32| match removes {
        true => Cleared {
            removed: n,
            unfinished: 1,
            ..Cleared::default()
        },
        false => Cleared {
            unfinished: 1,
            kept: n,
            ..Cleared::default()
        },
    };
    assert_eq!(cleared, expect(1));
    assert_eq!(
        store.ticket(ended[0].id, None).await.unwrap().is_none(),
        removes,
        "acme's ended tour ticket"
    );
    for t in &ended[1..] {
        assert!(
            store.ticket(t.id, None).await.unwrap().is_some(),
            "{:?} stays",
            t.idempotency_key
        );
    }
    let left = store.ticket(running.id, None).await.unwrap().unwrap();
    assert_eq!(
        left.state,
        TicketState::Queued,
        "an unfinished ticket is not touched"
    );
    // What the removed ticket cost was spent: its ledger row stays.
    let spent = store.cost_summary(Some(&acme)).await.unwrap();
    assert_eq!(spent.total.cost_nusd, 90, "{spent:?}");

    let all = store.clear_tagged(&tag, None).await.unwrap();
    assert_eq!(all, if removes { expect(1) } else { expect(2) });
}
