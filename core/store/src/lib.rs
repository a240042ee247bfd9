//! Durable state: tickets, transition events, the ledger and tenants.
//!
//! Owns persistence behind one port, [`Store`]. Writes arrive as a
//! [`WriteBatch`] that a store applies in a single transaction with a fixed
//! number of statements (each table's rows travel as one JSON array), which
//! is what makes group commit ([`writer`]) cheap: durability is paid once per
//! batch, not once per ticket. Reads serve the API and restart recovery.
//! Adapters: [`sqlite`] (the embedded default) and [`postgres`] (fleet mode,
//! with tenant row-level security).
//! Never decides anything about a ticket: the controller does.

use oshal_kernel::{clock, cost, text, ticket};

mod ends;
#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
pub mod journal;
pub mod limit;
pub mod postgres;
pub mod sqlite;
pub mod tagged;
mod texts;
pub mod tokens;
pub mod writer;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use specta::Type;
use std::sync::Arc;

use crate::clock::UnixMs;
use crate::cost::{CostSummary, LedgerEntry};
use crate::ticket::{
    BotId, Skill, TenantId, Ticket, TicketId, TicketState, Transition, WaitReason,
};
pub use ends::TicketEnd;
pub use journal::JournalEntry;
use oshal_kernel::name::Named;
pub use tagged::{Cleared, Tag};
pub use texts::StoredText;
pub use tokens::{TokenRecord, TokenRole};

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached or did not answer: transient, the
    /// same write may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store refused the data itself (PostgreSQL's SQLSTATE classes 22,
    /// data exception, and 23, integrity constraint; SQLite's constraint
    /// errors): permanent, the same write will always fail. It belongs to
    /// the rows that carry it, never to the rest of a batch.
    #[error("the store refused the data (SQLSTATE {code}): {message}")]
    Rejected { code: String, message: String },
    #[error("store migration failed: {0}")]
    Migrate(String),
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
    #[error("store is shut down")]
    Closed,
    #[error("store configuration: {0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether retrying the same write can never help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, StoreError::Rejected { .. })
    }
}

/// Whether a database refused the data itself (SQLSTATE classes 22 and 23,
/// a constraint, a value the driver cannot encode), as `(code, message)`:
/// permanent, and the one record's, where anything else is the store's
/// health. Every store over sqlx classifies its errors here.
pub fn refused_data(e: &sqlx::Error) -> Option<(String, String)> {
    use sqlx::error::ErrorKind as K;
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let pg_data_class = db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some_and(|_| code.starts_with("22") || code.starts_with("23"));
            let constraint = matches!(
                db.kind(),
                K::UniqueViolation
                    | K::ForeignKeyViolation
                    | K::NotNullViolation
                    | K::CheckViolation
            );
            (pg_data_class || constraint).then(|| (code, db.message().to_owned()))
        }
        sqlx::Error::Encode(err) => Some(("encode".into(), err.to_string())),
        _ => None,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match refused_data(&e) {
            Some((code, message)) => StoreError::Rejected { code, message },
            None => StoreError::Unavailable(e.to_string()),
        }
    }
}

// ---- decoding stored rows (shared by the adapters) ----------------------------

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn tenant(s: &str) -> Result<TenantId, StoreError> {
    TenantId::parse(s).map_err(|e| corrupt("tenant", e))
}

pub(crate) fn opt_bot(s: Option<String>) -> Result<Option<BotId>, StoreError> {
    s.as_deref()
        .map(|b| BotId::parse(b).map_err(|e| corrupt("bot id", e)))
        .transpose()
}

pub(crate) fn state(s: &str) -> Result<TicketState, StoreError> {
    TicketState::parse(s).ok_or_else(|| corrupt("state", s))
}

/// The mutable part of a ticket, written when it changes state.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketUpdate {
    pub id: TicketId,
    pub tenant: TenantId,
    pub state: TicketState,
    pub attempts: u32,
    pub transitions: u32,
    pub bot: Option<BotId>,
    pub not_before_ms: Option<UnixMs>,
    pub result: Option<std::sync::Arc<serde_json::Value>>,
    pub error: Option<String>,
    pub updated_at_ms: UnixMs,
}

impl TicketUpdate {
    pub fn of(t: &Ticket) -> Self {
        Self {
            id: t.id,
            tenant: t.tenant.clone(),
            state: t.state,
            attempts: t.attempts,
            transitions: t.transitions,
            bot: t.bot.clone(),
            not_before_ms: t.not_before_ms,
            result: t.result.clone(),
            error: t.error.clone(),
            updated_at_ms: t.updated_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Tenant {
    pub id: TenantId,
    /// `None`: no limit.
    #[specta(type = Option<specta_typescript::Number>)]
    pub budget_nusd: Option<i64>,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub created_at_ms: UnixMs,
}

/// Everything one group commit writes, in one transaction.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// Inserted if absent.
    pub tenants: Vec<Tenant>,
    /// Inserted unless their (tenant, idempotency key) already exists.
    pub new_tickets: Vec<Ticket>,
    /// Later updates of the same ticket win (see [`WriteBatch::coalesce`]).
    pub updates: Vec<TicketUpdate>,
    pub transitions: Vec<Transition>,
    /// Inserted unless the (ticket, attempt) row exists: never charged twice.
    pub ledger: Vec<LedgerEntry>,
    /// Tenants whose budget is set (created if absent; `None` removes the limit).
    pub budgets: Vec<Tenant>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
            && self.new_tickets.is_empty()
            && self.updates.is_empty()
            && self.transitions.is_empty()
            && self.ledger.is_empty()
            && self.budgets.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
            + self.new_tickets.len()
            + self.updates.len()
            + self.transitions.len()
            + self.ledger.len()
            + self.budgets.len()
    }

    /// Replaces every NUL in the text the batch carries (payloads,
    /// results, errors, event reasons); returns how many it replaced. The
    /// writer's last resort when the store refuses a batch for its data:
    /// text is cleaned where it enters, so this finds nothing unless a path
    /// was missed.
    pub fn clean(&mut self) -> usize {
        use crate::text::{clean_json, clean_string};
        let mut n = 0;
        for t in &mut self.new_tickets {
            let mut payload = t.work.payload_json();
            let replaced = clean_json(&mut payload);
            if replaced > 0
                && let Ok(work) = crate::ticket::Work::parse(t.work.kind(), payload)
            {
                n += replaced;
                t.work = Arc::new(work);
            }
            if let Some(r) = &mut t.result {
                n += clean_json(Arc::make_mut(r));
            }
            n += t.error.as_mut().map_or(0, clean_string);
            n += t.idempotency_key.as_mut().map_or(0, clean_string);
        }
        for u in &mut self.updates {
            if let Some(r) = &mut u.result {
                n += clean_json(Arc::make_mut(r));
            }
            n += u.error.as_mut().map_or(0, clean_string);
        }
        for t in &mut self.transitions {
            n += clean_string(&mut t.reason);
        }
        for l in &mut self.ledger {
            n += clean_string(&mut l.price_version);
        }
        n
    }

    /// Moves out the rows of `tickets` and `tenants` (their new tickets,
    /// updates, events, ledger rows, directory and budget rows).
    pub fn take_part(
        &mut self,
        tickets: &std::collections::HashSet<TicketId>,
        tenants: &std::collections::HashSet<TenantId>,
    ) -> WriteBatch {
        WriteBatch {
            tenants: self
                .tenants
                .extract_if(.., |t| tenants.contains(&t.id))
                .collect(),
            new_tickets: self
                .new_tickets
                .extract_if(.., |t| tickets.contains(&t.id))
                .collect(),
            updates: self
                .updates
                .extract_if(.., |u| tickets.contains(&u.id))
                .collect(),
            transitions: self
                .transitions
                .extract_if(.., |t| tickets.contains(&t.ticket))
                .collect(),
            ledger: self
                .ledger
                .extract_if(.., |l| tickets.contains(&l.ticket))
                .collect(),
            budgets: self
                .budgets
                .extract_if(.., |t| tenants.contains(&t.id))
                .collect(),
        }
    }

    /// Splits the batch into the parts the store can refuse one by one: the
    /// directory (tenants and budgets) first, then each ticket's life (its
    /// creation, updates and events) in the order the batch first names it,
    /// then each ledger row alone, so a refused result never costs the
    /// charge beside it.
    pub fn split(self) -> Vec<WriteBatch> {
        let mut parts = Vec::new();
        if !self.tenants.is_empty() || !self.budgets.is_empty() {
            parts.push(WriteBatch {
                tenants: self.tenants,
                budgets: self.budgets,
                ..WriteBatch::default()
            });
        }
        let mut index: std::collections::HashMap<TicketId, usize> = Default::default();
        let first = parts.len();
        let mut part_of = |id: TicketId, parts: &mut Vec<WriteBatch>| -> usize {
            *index.entry(id).or_insert_with(|| {
                parts.push(WriteBatch::default());
                parts.len() - 1
            })
        };
        for t in self.new_tickets {
            let i = part_of(t.id, &mut parts);
            parts[i].new_tickets.push(t);
        }
        for u in self.updates {
            let i = part_of(u.id, &mut parts);
            parts[i].updates.push(u);
        }
        for t in self.transitions {
            let i = part_of(t.ticket, &mut parts);
            parts[i].transitions.push(t);
        }
        debug_assert!(parts[first..].iter().all(|p| !p.is_empty()));
        parts.extend(self.ledger.into_iter().map(|l| WriteBatch {
            ledger: vec![l],
            ..WriteBatch::default()
        }));
        parts
    }

    /// Every ticket the batch has a row of, once each.
    pub fn tickets(&self) -> Vec<TicketId> {
        let mut seen = std::collections::HashSet::new();
        self.new_tickets
            .iter()
            .map(|t| t.id)
            .chain(self.updates.iter().map(|u| u.id))
            .chain(self.transitions.iter().map(|t| t.ticket))
            .chain(self.ledger.iter().map(|l| l.ticket))
            .filter(|id| seen.insert(*id))
            .collect()
    }

    pub fn absorb(&mut self, other: WriteBatch) {
        self.tenants.extend(other.tenants);
        self.new_tickets.extend(other.new_tickets);
        self.updates.extend(other.updates);
        self.transitions.extend(other.transitions);
        self.ledger.extend(other.ledger);
        self.budgets.extend(other.budgets);
    }

    /// Keeps only the last update of each ticket: a batch writes a ticket's
    /// latest state once, however many transitions it went through.
    pub fn coalesce(&mut self) {
        if self.updates.len() < 2 {
            return;
        }
        let mut seen = std::collections::HashSet::with_capacity(self.updates.len());
        let mut kept: Vec<TicketUpdate> = self
            .updates
            .drain(..)
            .rev()
            .filter(|u| seen.insert(u.id))
            .collect();
        kept.reverse();
        self.updates = kept;
    }
}

/// What applying a batch found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    /// New tickets refused as duplicates: (the id we tried, the id that exists).
    pub duplicates: Vec<(TicketId, TicketId)>,
    /// Records the store refused for their data, set aside so the rest of
    /// the batch could land (the writer's isolation; see `writer`).
    pub rejected: Vec<RejectedRows>,
}

/// A ticket's rows the store refused for their data: none of them landed.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRows {
    pub ticket: TicketId,
    /// Whether the refused rows were only its ledger row (its charge).
    pub ledger_only: bool,
    pub error: String,
}

impl Applied {
    pub fn absorb(&mut self, other: Applied) {
        self.duplicates.extend(other.duplicates);
        self.rejected.extend(other.rejected);
    }
}

/// A ticket as the API shows it in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct TicketView {
    pub id: TicketId,
    pub tenant: TenantId,
    pub kind: String,
    #[specta(type = specta_typescript::Unknown)]
    pub payload: serde_json::Value,
    pub priority: u8,
    pub skill: Skill,
    pub idempotency_key: Option<String>,
    pub state: TicketState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub bot: Option<BotId>,
    pub parent_id: Option<TicketId>,
    pub correlation_id: TicketId,
    pub causation_id: Option<TicketId>,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub not_before_ms: Option<UnixMs>,
    #[specta(type = Option<specta_typescript::Unknown>)]
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
    /// When the API's auth gate admitted its submission; absent where no gate stands (IPC, the controller's own).
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub gate_at_ms: Option<UnixMs>,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub created_at_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub updated_at_ms: UnixMs,
    pub cost: TicketCost,
    pub events: Vec<Transition>,
    pub ledger: Vec<LedgerEntry>,
    /// Why it is not moving yet (non-terminal tickets only).
    pub waiting: Option<Waiting>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Waiting {
    #[serde(flatten)]
    pub reason: WaitReason,
    pub message: String,
}

impl From<WaitReason> for Waiting {
    fn from(reason: WaitReason) -> Self {
        Self {
            message: reason.describe(),
            reason,
        }
    }
}

/// A ticket's cost: the sum of its ledger rows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct TicketCost {
    #[specta(type = specta_typescript::Number)]
    pub input_tokens: i64,
    #[specta(type = specta_typescript::Number)]
    pub output_tokens: i64,
    #[specta(type = specta_typescript::Number)]
    pub cost_nusd: i64,
    pub usd: f64,
    pub attempts_charged: u32,
}

impl TicketCost {
    pub fn of(ledger: &[LedgerEntry]) -> Self {
        let cost_nusd = ledger.iter().map(|l| l.cost_nusd).sum();
        Self {
            input_tokens: ledger.iter().map(|l| i64::from(l.input_tokens)).sum(),
            output_tokens: ledger.iter().map(|l| i64::from(l.output_tokens)).sum(),
            cost_nusd,
            usd: crate::cost::usd(cost_nusd),
            attempts_charged: ledger.len() as u32,
        }
    }
}

/// Assembles the full view of a ticket from its parts.
pub(crate) fn view(t: Ticket, events: Vec<Transition>, ledger: Vec<LedgerEntry>) -> TicketView {
    TicketView {
        id: t.id,
        tenant: t.tenant,
        kind: t.work.kind().to_owned(),
        payload: t.work.payload_json(),
        priority: t.priority,
        skill: t.skill,
        idempotency_key: t.idempotency_key,
        state: t.state,
        attempts: t.attempts,
        max_attempts: t.max_attempts,
        bot: t.bot,
        parent_id: t.parent_id,
        correlation_id: t.correlation_id,
        causation_id: t.causation_id,
        not_before_ms: t.not_before_ms,
        result: t.result.map(|r| (*r).clone()),
        error: t.error,
        gate_at_ms: t.gate_at_ms,
        created_at_ms: t.created_at_ms,
        updated_at_ms: t.updated_at_ms,
        cost: TicketCost::of(&ledger),
        events,
        ledger,
        waiting: None,
    }
}

/// A ticket as a list shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct TicketSummary {
    pub id: TicketId,
    pub tenant: TenantId,
    pub kind: String,
    pub skill: Skill,
    pub priority: u8,
    pub state: TicketState,
    pub attempts: u32,
    pub bot: Option<BotId>,
    pub error: Option<String>,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub created_at_ms: UnixMs,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub updated_at_ms: UnixMs,
}

/// A page of tickets, newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct TicketPage {
    pub tickets: Vec<TicketSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<TicketId>,
}

impl TicketPage {
    /// A page from up to `limit + 1` tickets, newest first: the extra one
    /// only says there is a next page.
    pub(crate) fn from_overfetch(mut tickets: Vec<TicketSummary>, limit: usize) -> Self {
        let next_cursor = if tickets.len() > limit {
            tickets.truncate(limit);
            tickets.last().map(|t| t.id)
        } else {
            None
        };
        Self {
            tickets,
            next_cursor,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TicketQuery {
    pub state: Option<TicketState>,
    pub tenant: Option<TenantId>,
    pub bot: Option<BotId>,
    pub kind: Option<String>,
    /// Only tickets whose idempotency key starts with this.
    pub tag: Option<Tag>,
    /// Return tickets older than this one.
    pub cursor: Option<TicketId>,
    pub limit: u32,
}

/// The most tickets one page holds.
pub const MAX_PAGE: u32 = 1000;

/// Durable state, as every adapter provides it.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Applies the whole batch in one transaction, or nothing of it.
    ///
    /// Idempotent: a batch that already landed (its answer lost with the
    /// connection, say, and the writer retrying) lands nothing again and
    /// reports none of its own tickets as duplicates.
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError>;
    /// One ticket with its events and ledger rows (`waiting` left empty);
    /// with `only`, `None` unless it is that tenant's (on PostgreSQL the
    /// read runs as that tenant, so row-level security decides).
    async fn ticket(
        &self,
        id: TicketId,
        only: Option<&TenantId>,
    ) -> Result<Option<TicketView>, StoreError>;
    /// Many tickets at once, each as [`Store::ticket`] reads it (those not
    /// found, or not `only`'s, left out), in no set order. The stores read
    /// them in a few statements, not three per ticket.
    async fn tickets_by_id(
        &self,
        ids: &[TicketId],
        only: Option<&TenantId>,
    ) -> Result<Vec<TicketView>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.extend(self.ticket(*id, only).await?);
        }
        Ok(out)
    }
    /// What many tickets' ends tell ([`TicketEnd`]), read together and
    /// narrowly (those not found, or not `only`'s, left out), in no set
    /// order.
    async fn ticket_ends(
        &self,
        ids: &[TicketId],
        only: Option<&TenantId>,
    ) -> Result<Vec<TicketEnd>, StoreError> {
        Ok(self
            .tickets_by_id(ids, only)
            .await?
            .iter()
            .map(TicketEnd::of)
            .collect())
    }
    async fn tickets(&self, query: &TicketQuery) -> Result<TicketPage, StoreError>;
    /// Every ticket not in a terminal state, oldest first: what a restarted
    /// controller must drive on.
    async fn unfinished(&self) -> Result<Vec<Ticket>, StoreError>;
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError>;
    /// Total spend per tenant, nano-dollars.
    async fn spend_by_tenant(&self) -> Result<Vec<(TenantId, i64)>, StoreError>;
    /// Spend in total and by group; with `only`, of that tenant alone.
    async fn cost_summary(&self, only: Option<&TenantId>) -> Result<CostSummary, StoreError>;
    /// Tickets per state; with `only`, of that tenant alone.
    async fn state_counts(
        &self,
        only: Option<&TenantId>,
    ) -> Result<Vec<(TicketState, i64)>, StoreError>;
    /// Every API token, revoked ones too, oldest first.
    async fn api_tokens(&self) -> Result<Vec<TokenRecord>, StoreError>;
    /// Stores a new token (its hash; never its value).
    async fn add_api_token(&self, token: &TokenRecord) -> Result<(), StoreError>;
    /// Marks a live token revoked; `false` if no live token has this id.
    async fn revoke_api_token(&self, id: &str, at: UnixMs) -> Result<bool, StoreError>;
    /// Appends entries to the journal in one transaction: all of them, or
    /// none if any is refused or any `(session, seq)` is already taken
    /// (then the answer is 0: another writer got there first).
    async fn append_journal(&self, entries: &[JournalEntry]) -> Result<usize, StoreError>;
    /// The entries of `book`, of every session or of `only`'s, in
    /// session then `seq` order.
    async fn journal(
        &self,
        book: &str,
        only: Option<&TenantId>,
    ) -> Result<Vec<JournalEntry>, StoreError>;
    /// One session's entries of `book`, the tenant's, in `seq` order.
    async fn journal_of(
        &self,
        book: &str,
        session: &str,
        tenant: &TenantId,
    ) -> Result<Vec<JournalEntry>, StoreError>;
    /// Removes the ended tickets of `tag` (with `only`, of that tenant),
    /// their rows and events, in one transaction, and counts the rest;
    /// their ledger rows stay. This default removes nothing: a store whose
    /// history is append-only counts what it keeps.
    async fn clear_tagged(
        &self,
        tag: &Tag,
        only: Option<&TenantId>,
    ) -> Result<Cleared, StoreError> {
        tagged::count_kept(self, tag, only).await
    }
    /// Liveness of the backing database.
    async fn ping(&self) -> Result<(), StoreError>;
    /// How many batches the writer may apply at once, each in its own
    /// transaction on its own connection (see `writer`).
    fn parallel_commits(&self) -> usize {
        1
    }
    /// The free text stored with tickets, for the secret scan: the payload,
    /// result, error and event reasons of up to `limit` tickets whose ids
    /// come after `after`, in id order (page on with the last ticket's id).
    async fn texts(
        &self,
        after: Option<TicketId>,
        limit: u32,
    ) -> Result<Vec<StoredText>, StoreError>;
}

/// What [`Hooked`] does with each batch: apply it to `inner`, and around
/// that whatever the hook is for.
#[async_trait]
pub trait ApplyHook: Send + Sync + std::fmt::Debug {
    async fn apply(&self, inner: &dyn Store, batch: &WriteBatch) -> Result<Applied, StoreError>;
}

#[async_trait]
impl<H: ApplyHook + ?Sized> ApplyHook for Arc<H> {
    async fn apply(&self, inner: &dyn Store, batch: &WriteBatch) -> Result<Applied, StoreError> {
        (**self).apply(inner, batch).await
    }
}

/// A store whose writes go through a hook and whose reads go straight to
/// `inner`: how the fleet bench times commits, and how tests make a real
/// store's commits fail.
#[derive(Debug)]
pub struct Hooked<H> {
    pub inner: Arc<dyn Store>,
    pub hook: H,
}

#[async_trait]
impl<H: ApplyHook> Store for Hooked<H> {
    async fn apply(&self, batch: &WriteBatch) -> Result<Applied, StoreError> {
        self.hook.apply(self.inner.as_ref(), batch).await
    }
    async fn ticket(
        &self,
        id: TicketId,
        only: Option<&TenantId>,
    ) -> Result<Option<TicketView>, StoreError> {
        self.inner.ticket(id, only).await
    }
    async fn tickets_by_id(
        &self,
        ids: &[TicketId],
        only: Option<&TenantId>,
    ) -> Result<Vec<TicketView>, StoreError> {
        self.inner.tickets_by_id(ids, only).await
    }
    async fn ticket_ends(
        &self,
        ids: &[TicketId],
        only: Option<&TenantId>,
    ) -> Result<Vec<TicketEnd>, StoreError> {
        self.inner.ticket_ends(ids, only).await
    }
    async fn tickets(&self, q: &TicketQuery) -> Result<TicketPage, StoreError> {
        self.inner.tickets(q).await
    }
    async fn unfinished(&self) -> Result<Vec<Ticket>, StoreError> {
        self.inner.unfinished().await
    }
    async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        self.inner.tenants().await
    }
    async fn spend_by_tenant(&self) -> Result<Vec<(TenantId, i64)>, StoreError> {
        self.inner.spend_by_tenant().await
    }
    async fn cost_summary(&self, only: Option<&TenantId>) -> Result<CostSummary, StoreError> {
        self.inner.cost_summary(only).await
    }
    async fn state_counts(
        &self,
        only: Option<&TenantId>,
    ) -> Result<Vec<(TicketState, i64)>, StoreError> {
        self.inner.state_counts(only).await
    }
    async fn api_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        self.inner.api_tokens().await
    }
    async fn add_api_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.inner.add_api_token(token).await
    }
    async fn revoke_api_token(&self, id: &str, at: UnixMs) -> Result<bool, StoreError> {
        self.inner.revoke_api_token(id, at).await
    }
    async fn append_journal(&self, entries: &[JournalEntry]) -> Result<usize, StoreError> {
        self.inner.append_journal(entries).await
    }
    async fn journal(
        &self,
        book: &str,
        only: Option<&TenantId>,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.inner.journal(book, only).await
    }
    async fn journal_of(
        &self,
        book: &str,
        session: &str,
        tenant: &TenantId,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.inner.journal_of(book, session, tenant).await
    }
    async fn clear_tagged(
        &self,
        tag: &Tag,
        only: Option<&TenantId>,
    ) -> Result<Cleared, StoreError> {
        self.inner.clear_tagged(tag, only).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    fn parallel_commits(&self) -> usize {
        self.inner.parallel_commits()
    }
    async fn texts(
        &self,
        after: Option<TicketId>,
        limit: u32,
    ) -> Result<Vec<StoredText>, StoreError> {
        self.inner.texts(after, limit).await
    }
}
