//! Rows the adapters' tests write: a fresh ticket and a ledger row.

use crate::cost::LedgerEntry;
use crate::ticket::{BotId, ModelId, NewTicket, Ticket, TicketId, Transition};

/// A new chat ticket of `tenant`, with its creating transition.
pub(crate) fn ticket(tenant: &str, key: Option<&str>) -> (Ticket, Transition) {
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
pub(crate) fn ledger(t: &Ticket, attempt: u32, cost: i64) -> LedgerEntry {
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
