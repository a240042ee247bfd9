//! Lanes: each bot's own queue of work.
//!
//! Owns delivery between the controller and one bot. A bot consumes only its
//! own lane. The semantics are those of a Redis Streams consumer group, so the
//! in-process lane ([`local::LocalLane`]) and the Redis lane of fleet mode are
//! interchangeable: `publish` appends (refusing what does not fit: lanes are
//! bounded, never unbounded memory), `read` delivers entries to a consumer,
//! which holds them as pending until `ack` (sent only once the controller has
//! made the result durable), `claim` takes over entries a dead consumer
//! held past an idle time, and `withdraw` takes back what no consumer has
//! read (a drained bot's waiting work). Start with [`Lane`]; the Redis Streams lane of
//! fleet mode is [`redis::RedisLane`].

use oshal_kernel::ticket;

pub mod local;
pub mod redis;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use specta::Type;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::ticket::{BotId, TenantId, Ticket, TicketId, Work};

/// A lane entry's id; the same shape as a Redis Streams id (`ms-seq`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EntryId {
    pub ms: u64,
    pub seq: u64,
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One unit of work in a lane: what a bot needs to run one attempt. It holds
/// no credential and nothing the bot should not see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneEntry {
    pub ticket: TicketId,
    pub attempt: u32,
    pub tenant: TenantId,
    pub work: Arc<Work>,
    pub correlation_id: TicketId,
}

impl LaneEntry {
    /// The entry of `t`'s current attempt.
    pub fn of(t: &Ticket) -> Self {
        Self {
            ticket: t.id,
            attempt: t.attempts,
            tenant: t.tenant.clone(),
            work: t.work.clone(),
            correlation_id: t.correlation_id,
        }
    }
}

/// An entry as delivered to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: EntryId,
    pub entry: LaneEntry,
    /// How many times this entry has been delivered, this time included.
    pub deliveries: u32,
}

/// A lane's gauges, as the topology views draw them.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema,
)]
pub struct LaneStats {
    /// Entries waiting in the lane, not yet delivered to its bot (a count).
    pub depth: u32,
    /// Entries delivered to the bot and not yet acknowledged (a count).
    pub pending: u32,
    /// How long the oldest entry still waiting has waited, in milliseconds
    /// (0 when none waits): how far behind the bot is, in time.
    #[specta(type = specta_typescript::Number)]
    pub lag_ms: u64,
    pub capacity: u32,
    #[specta(type = specta_typescript::Number)]
    pub published_total: u64,
    #[specta(type = specta_typescript::Number)]
    pub acked_total: u64,
    #[specta(type = specta_typescript::Number)]
    pub dead_lettered_total: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaneError {
    #[error("lane of bot {0} is closed")]
    Closed(BotId),
    #[error("lane backend: {0}")]
    Backend(String),
}

/// A bot's own lane.
#[async_trait]
pub trait Lane: Send + Sync + fmt::Debug {
    fn bot(&self) -> &BotId;

    /// Appends `entries` in order. Returns the tail that did not fit, so the
    /// caller keeps it queued (backpressure) instead of buffering it here.
    async fn publish(&self, entries: Vec<LaneEntry>) -> Result<Vec<LaneEntry>, LaneError>;

    /// Delivers up to `max` new entries to `consumer`, waiting up to `block`
    /// for one. Cancellation-safe: an entry is only handed over when this
    /// returns.
    async fn read(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, LaneError>;

    /// Acknowledges entries; returns how many were pending.
    async fn ack(&self, ids: &[EntryId]) -> Result<u64, LaneError>;

    /// Takes over up to `max` entries pending at least `min_idle` (held by a
    /// consumer that died) and delivers them to `consumer`.
    async fn claim(
        &self,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, LaneError>;

    /// Records an entry given up on after too many deliveries, with why.
    /// The entry stays pending until the controller acks it with the
    /// ticket's final state.
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), LaneError>;

    async fn stats(&self) -> Result<LaneStats, LaneError>;

    /// Takes back every entry not yet delivered to a consumer, oldest
    /// first: none of them will be delivered (a drained bot's waiting
    /// work, for the controller to route elsewhere). Entries delivered
    /// and pending stay with their consumer. Atomic with respect to
    /// `read`: an entry is either delivered or withdrawn, never both. It
    /// may answer again what an earlier withdrawal took (the Redis lane
    /// does, so an answer lost is not work lost); the caller takes each
    /// attempt back once.
    async fn withdraw(&self) -> Result<Vec<LaneEntry>, LaneError>;

    /// Whether the entries the last `read` delivered came from a store that
    /// has since lost its data. The controller re-drives every such entry as
    /// a new attempt, so running the old one would only pay for a result
    /// nobody records. In-process lanes never lose data.
    fn superseded(&self) -> bool {
        false
    }
}

/// What every lane must do, checked against each adapter by its tests.
/// Unix time in milliseconds, through the kernel's clock (a lane stamps
/// its entries as a stream does).
pub(crate) fn now_ms() -> u64 {
    use oshal_kernel::clock::{Clock, SystemClock};
    u64::try_from(SystemClock.now_ms()).unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod contract {
    use super::*;
    use crate::ticket::NewTicket;

    pub(crate) fn entry() -> LaneEntry {
        let v = NewTicket::chat("x").validate().unwrap();
        let id = TicketId::new();
        LaneEntry {
            ticket: id,
            attempt: 1,
            tenant: TenantId::default_tenant(),
            work: v.work,
            correlation_id: id,
        }
    }

    /// Of five entries, the two a consumer read stay pending with it; the
    /// three it had not read are withdrawn, in order, and never delivered
    /// after; the lane counts none waiting. Returns the lane's stats.
    pub(crate) async fn undelivered_entries_are_withdrawn(l: &dyn Lane) -> LaneStats {
        let sent: Vec<LaneEntry> = (0..5).map(|_| entry()).collect();
        l.publish(sent.clone()).await.unwrap();
        let read = l.read("c", 2, Duration::ZERO).await.unwrap();
        assert_eq!(read.len(), 2);
        let back = l.withdraw().await.unwrap();
        assert_eq!(back, sent[2..].to_vec(), "the unread ones, oldest first");
        let again = l.withdraw().await.unwrap();
        assert!(
            again.is_empty() || again == back,
            "nothing new; at most what was taken, again: {again:?}"
        );
        let claimed = l.claim("heir", Duration::ZERO, 10).await.unwrap();
        assert_eq!(
            claimed.iter().map(|d| d.id).collect::<Vec<_>>(),
            read.iter().map(|d| d.id).collect::<Vec<_>>(),
            "only the two read are pending, with their consumer"
        );
        assert!(
            l.read("c", 10, Duration::ZERO).await.unwrap().is_empty(),
            "a withdrawn entry is never delivered"
        );
        let later = entry();
        l.publish(vec![later.clone()]).await.unwrap();
        let stats = l.stats().await.unwrap();
        assert_eq!((stats.depth, stats.pending), (1, 2), "{stats:?}");
        let got = l.read("c", 10, Duration::ZERO).await.unwrap();
        assert_eq!(
            got.iter().map(|d| &d.entry).collect::<Vec<_>>(),
            vec![&later]
        );
        let ids: Vec<EntryId> = read.iter().chain(&got).map(|d| d.id).collect();
        assert_eq!(l.ack(&ids).await.unwrap(), 3, "the pending ones stayed");
        l.stats().await.unwrap()
    }

    /// Two entries read by a consumer that then dies are not claimable
    /// before the idle time, then are claimed in order, delivered a second
    /// time. Returns what was claimed.
    pub(crate) async fn dead_consumers_entries_are_claimed(l: &dyn Lane) -> Vec<Delivery> {
        l.publish(vec![entry(), entry()]).await.unwrap();
        let held = l.read("dead", 2, Duration::ZERO).await.unwrap();
        assert!(
            l.claim("heir", Duration::from_secs(60), 10)
                .await
                .unwrap()
                .is_empty(),
            "not idle long enough"
        );
        let claimed = l.claim("heir", Duration::ZERO, 10).await.unwrap();
        assert_eq!(
            claimed.iter().map(|d| d.id).collect::<Vec<_>>(),
            held.iter().map(|d| d.id).collect::<Vec<_>>()
        );
        assert!(claimed.iter().all(|d| d.deliveries == 2));
        claimed
    }
}
