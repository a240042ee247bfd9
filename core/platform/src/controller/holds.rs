//! Holds that outlive a controller restart.
//!
//! A tenant paused or resumed by an operator or a heal: its tickets are
//! admitted and kept (queued, parked), never routed, until it is resumed;
//! what is routed or running finishes. Durable in the journal's
//! `tenant-holds` book (a session per tenant, `hold/<uuid v5 of its
//! name>`, apart from every other book's sessions; the newest entry
//! decides), so a controller restart keeps the tenant paused. One pause
//! or resume at a time, from the journal to the scheduler, so the two
//! never disagree.
//!
//! A bot drained (cordoned) or uncordoned, alone or with its node: kept
//! in the `bot-holds` book (a session per bot, `cordon/<uuid v5 of its
//! id>`, the bot's id and node in each entry's body) once the scheduler has done
//! it and before the request is answered, so a restarted controller
//! routes nothing to a drained bot, whether it is in the pool it starts
//! with or registers later. A crash between the two leaves the request
//! unanswered and, after the restart, the bot as the journal says.

use std::collections::HashMap;

use super::scheduler::Command;
use super::{Controller, ControllerError};
use crate::store::{JournalEntry, Store, StoreError};
use crate::ticket::{BotId, TenantId};

/// The journal book of bots' drains.
const BOT_BOOK: &str = "bot-holds";
const CORDONED: &str = "cordoned";
const UNCORDONED: &str = "uncordoned";

/// A bot's drain as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Cordon {
    pub bot: BotId,
    /// The node it runs on, if it has one (an entry older than this field
    /// has none: such a bot is uncordoned by name, not with its node).
    pub node: Option<String>,
    pub cordoned: bool,
}

/// The bots the journal says are drained.
pub(super) async fn cordoned(store: &dyn Store) -> Result<Vec<Cordon>, StoreError> {
    let default = TenantId::default_tenant();
    let mut last: HashMap<String, (u32, Option<Cordon>)> = HashMap::new();
    for e in store.journal(BOT_BOOK, Some(&default)).await? {
        let newer = last.get(&e.session).is_none_or(|(seq, _)| e.seq >= *seq);
        if newer {
            let body = serde_json::from_str::<serde_json::Value>(&e.body).unwrap_or_default();
            let cordon = body["bot"]
                .as_str()
                .and_then(|b| BotId::parse(b).ok())
                .map(|bot| Cordon {
                    bot,
                    node: body["node"].as_str().map(str::to_owned),
                    cordoned: e.kind == CORDONED,
                });
            last.insert(e.session.clone(), (e.seq, cordon));
        }
    }
    Ok(last
        .into_values()
        .filter_map(|(_, cordon)| cordon)
        .filter(|c| c.cordoned)
        .collect())
}

/// The journal session of `bot`'s drains (see [`session_of`]).
fn bot_session(bot: &BotId) -> String {
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, bot.as_str().as_bytes());
    format!("cordon/{}", id.simple())
}

/// The journal book of tenants' pauses.
const BOOK: &str = "tenant-holds";
const PAUSED: &str = "paused";
const RESUMED: &str = "resumed";

/// The tenants the journal says are paused.
pub(super) async fn paused(store: &dyn Store) -> Result<Vec<TenantId>, StoreError> {
    let mut last: HashMap<String, (u32, TenantId, bool)> = HashMap::new();
    for e in store.journal(BOOK, None).await? {
        let newer = last.get(&e.session).is_none_or(|(seq, _, _)| e.seq >= *seq);
        if newer {
            last.insert(
                e.session.clone(),
                (e.seq, e.tenant.clone(), e.kind == PAUSED),
            );
        }
    }
    Ok(last
        .into_values()
        .filter(|(_, _, paused)| *paused)
        .map(|(_, t, _)| t)
        .collect())
}

/// The journal session of `tenant`'s pauses: no tenant name has a `/`,
/// so it is no other book's session (the journal's key is session and
/// seq), and the name's UUID v5 keeps it within 64 bytes.
fn session_of(tenant: &TenantId) -> String {
    let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, tenant.as_str().as_bytes());
    format!("hold/{}", id.simple())
}

/// What pausing or resuming a tenant did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paused {
    pub tenant: TenantId,
    /// Whether it is paused now.
    pub paused: bool,
    /// Whether this request changed that.
    pub changed: bool,
}

impl Controller {
    /// The tenants paused now, as the journal keeps them.
    pub async fn paused_tenants(&self) -> Result<Vec<TenantId>, ControllerError> {
        Ok(paused(self.inner.store.as_ref()).await?)
    }

    /// Pauses (`paused`) or resumes a known tenant, durably, then in the
    /// scheduler; a repeat changes nothing. `why` is kept with the entry.
    /// The `default` tenant is never paused: it runs the platform's own
    /// work (the operations loop, its investigations and heals).
    pub async fn pause_tenant(
        &self,
        tenant: &TenantId,
        paused: bool,
        why: &str,
    ) -> Result<Paused, ControllerError> {
        let tenant = self.known_tenant(Some(tenant.as_str())).await?;
        if paused && tenant == TenantId::default_tenant() {
            return Err(crate::ticket::TicketError::Invalid {
                field: "tenant",
                reason: "the default tenant runs the platform's own work (the operations loop, its investigations and heals) and is never paused".into(),
            }
            .into());
        }
        let store = &self.inner.store;
        let session = session_of(&tenant);
        let _one_at_a_time = self.inner.holds.lock().await;
        // Two writers at once: the second's entry is refused (its seq is
        // taken) and it reads again.
        for _ in 0..3 {
            let entries = store.journal_of(BOOK, &session, &tenant).await?;
            let now = entries.last().is_some_and(|e| e.kind == PAUSED);
            if now != paused {
                let entry = JournalEntry {
                    book: BOOK.into(),
                    session: session.clone(),
                    seq: entries.len() as u32,
                    tenant: tenant.clone(),
                    kind: if paused { PAUSED } else { RESUMED }.into(),
                    body: serde_json::json!({ "why": why }).to_string(),
                    at_ms: self.inner.clock.now_ms(),
                };
                if store.append_journal(&[entry]).await? == 0 {
                    continue;
                }
            }
            let t = tenant.clone();
            let changed = self
                .ask(|reply| Command::PauseTenant {
                    tenant: t,
                    paused,
                    reply,
                })
                .await?;
            return Ok(Paused {
                tenant,
                paused,
                changed,
            });
        }
        Err(StoreError::Unavailable(format!(
            "tenant {tenant}'s pause was written by others three times meanwhile; try again"
        ))
        .into())
    }

    /// Keeps each bot's drain as the scheduler now has it (`cordoned`
    /// or not), in one commit: an entry for each whose newest entry says
    /// otherwise (none for a bot never drained). The caller holds the
    /// holds lock from before its scheduler command until this is written,
    /// so the journal's order is the scheduler's.
    pub(super) async fn keep_cordons(
        &self,
        bots: &[Cordon],
        why: &str,
    ) -> Result<(), ControllerError> {
        let store = &self.inner.store;
        let default = TenantId::default_tenant();
        for _ in 0..3 {
            let mut entries = Vec::new();
            for Cordon {
                bot,
                node,
                cordoned,
            } in bots
            {
                let session = bot_session(bot);
                let kept = store.journal_of(BOT_BOOK, &session, &default).await?;
                let was = kept.last().is_some_and(|e| e.kind == CORDONED);
                if was == *cordoned {
                    continue;
                }
                entries.push(JournalEntry {
                    book: BOT_BOOK.into(),
                    session,
                    seq: kept.len() as u32,
                    tenant: default.clone(),
                    kind: if *cordoned { CORDONED } else { UNCORDONED }.into(),
                    body: serde_json::json!({ "bot": bot, "node": node, "why": why }).to_string(),
                    at_ms: self.inner.clock.now_ms(),
                });
            }
            if entries.is_empty() || store.append_journal(&entries).await? > 0 {
                return Ok(());
            }
        }
        Err(StoreError::Unavailable(
            "a drain was written by others three times meanwhile; try again".into(),
        )
        .into())
    }

    /// Runs a drain, an uncordon or a retirement (`change`) in the
    /// scheduler and keeps in the journal how it left the bots `of` picks,
    /// before answering: a lane that failed midway leaves its bots
    /// drained, and so does the journal. One such change at a time.
    pub(super) async fn held_change<T>(
        &self,
        why: &str,
        of: impl Fn(&super::BotHandle) -> bool,
        change: impl AsyncFnOnce() -> Result<T, ControllerError>,
    ) -> Result<T, ControllerError> {
        let _one_at_a_time = self.inner.holds.lock().await;
        let answer = change().await;
        let now: Vec<Cordon> = self
            .bot_handles()
            .iter()
            .filter(|b| of(b))
            .map(|b| Cordon {
                bot: b.id.clone(),
                node: b.node.clone(),
                cordoned: b
                    .counters
                    .cordoned
                    .load(std::sync::atomic::Ordering::Relaxed),
            })
            .collect();
        self.keep_cordons(&now, why).await?;
        answer
    }
}
