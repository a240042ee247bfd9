//! Rows the adapters' tests write: a fresh ticket, a ledger row, a whole
//! ticket's life in one batch.

#![allow(clippy::unwrap_used)] // test support: a failure is the test's

use super::{TicketUpdate, WriteBatch};
use crate::cost::LedgerEntry;
use crate::ticket::{BotId, ModelId, NewTicket, Ticket, TicketId, Transition, TransitionKind};

/// A new chat ticket of `tenant`, with its creating transition.
pub fn ticket(tenant: &str, key: Option<&str>) -> (Ticket, Transition) {
    let v = NewTicket {
        tenant: Some(tenant.into()),
        idempotency_key: key.map(Into::into),
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
