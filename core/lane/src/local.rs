//! The in-process lane of local mode: bounded, with consumer-group semantics.
//!
//! One short `std::sync::Mutex` (never held across an `.await`) guards the
//! queue and the pending set; a `Notify` wakes a blocked reader. The capacity
//! bounds queued and pending entries together, so memory is bounded even when
//! a consumer stops acknowledging.

use async_trait::async_trait;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::{Delivery, EntryId, Lane, LaneEntry, LaneError, LaneStats};
use crate::ticket::BotId;

#[derive(Debug)]
struct Pending {
    consumer: String,
    delivered_at: Instant,
    deliveries: u32,
    entry: LaneEntry,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<(EntryId, LaneEntry, u32)>,
    pending: BTreeMap<EntryId, Pending>,
    next_seq: u64,
    published_total: u64,
    acked_total: u64,
    dead_lettered_total: u64,
}

#[derive(Debug)]
pub struct LocalLane {
    bot: BotId,
    capacity: usize,
    inner: Mutex<Inner>,
    notify: Notify,
}

impl LocalLane {
    pub fn new(bot: BotId, capacity: usize) -> Self {
        Self {
            bot,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves the lane's maps consistent
        // (every mutation is a single push/pop/insert), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take(&self, consumer: &str, max: usize) -> Vec<Delivery> {
        let mut inner = self.lock();
        let n = inner.queue.len().min(max);
        let now = Instant::now();
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let Some((id, entry, prior)) = inner.queue.pop_front() else {
                break;
            };
            let deliveries = prior + 1;
            inner.pending.insert(
                id,
                Pending {
                    consumer: consumer.to_owned(),
                    delivered_at: now,
                    deliveries,
                    entry: entry.clone(),
                },
            );
            out.push(Delivery {
                id,
                entry,
                deliveries,
            });
        }
        out
    }
}

#[async_trait]
impl Lane for LocalLane {
    fn bot(&self) -> &BotId {
        &self.bot
    }

    async fn publish(&self, entries: Vec<LaneEntry>) -> Result<Vec<LaneEntry>, LaneError> {
        let rest = {
            let mut inner = self.lock();
            let room = self
                .capacity
                .saturating_sub(inner.queue.len() + inner.pending.len());
            let mut entries = entries;
            let rest = entries.split_off(room.min(entries.len()));
            for entry in entries {
                inner.next_seq += 1;
                // Like a stream id: when it was appended, then its order.
                let id = EntryId {
                    ms: crate::now_ms(),
                    seq: inner.next_seq,
                };
                inner.queue.push_back((id, entry, 0));
                inner.published_total += 1;
            }
            rest
        };
        self.notify.notify_waiters();
        Ok(rest)
    }

    async fn read(
        &self,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, LaneError> {
        let deadline = tokio::time::Instant::now() + block;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.take(consumer, max);
            if !got.is_empty() {
                return Ok(got);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack(&self, ids: &[EntryId]) -> Result<u64, LaneError> {
        let n = {
            let mut inner = self.lock();
            let n = ids
                .iter()
                .filter(|id| inner.pending.remove(id).is_some())
                .count() as u64;
            inner.acked_total += n;
            n
        };
        Ok(n)
    }

    async fn claim(
        &self,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, LaneError> {
        let mut inner = self.lock();
        let now = Instant::now();
        let mut out = Vec::new();
        for (id, p) in inner.pending.iter_mut() {
            if out.len() >= max {
                break;
            }
            if now.duration_since(p.delivered_at) >= min_idle {
                p.consumer = consumer.to_owned();
                p.delivered_at = now;
                p.deliveries += 1;
                out.push(Delivery {
                    id: *id,
                    entry: p.entry.clone(),
                    deliveries: p.deliveries,
                });
            }
        }
        Ok(out)
    }

    async fn dead_letter(&self, delivery: &Delivery, reason: &str) -> Result<(), LaneError> {
        self.lock().dead_lettered_total += 1;
        tracing::warn!(bot = %self.bot, ticket = %delivery.entry.ticket, deliveries = delivery.deliveries, reason, "dead-lettered");
        Ok(())
    }

    async fn withdraw(&self) -> Result<Vec<LaneEntry>, LaneError> {
        let mut inner = self.lock();
        Ok(inner.queue.drain(..).map(|(_, entry, _)| entry).collect())
    }

    async fn stats(&self) -> Result<LaneStats, LaneError> {
        let inner = self.lock();
        Ok(LaneStats {
            depth: inner.queue.len() as u32,
            pending: inner.pending.len() as u32,
            lag_ms: inner
                .queue
                .front()
                .map_or(0, |(id, _, _)| crate::now_ms().saturating_sub(id.ms)),
            capacity: self.capacity as u32,
            published_total: inner.published_total,
            acked_total: inner.acked_total,
            dead_lettered_total: inner.dead_lettered_total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{self, entry};
    use std::sync::Arc;

    fn lane(cap: usize) -> LocalLane {
        LocalLane::new(BotId::parse("bot-1").unwrap(), cap)
    }

    #[tokio::test]
    async fn undelivered_entries_are_withdrawn() {
        let l = lane(8);
        let s = contract::undelivered_entries_are_withdrawn(&l).await;
        assert_eq!((s.depth, s.pending, s.published_total), (0, 0, 6));
    }

    /// Depth and lag were the same figure under two names; lag is now how
    /// long the oldest waiting entry has waited.
    #[tokio::test]
    async fn lag_is_the_age_of_the_oldest_waiting_entry() {
        let l = lane(8);
        assert_eq!(l.stats().await.unwrap().lag_ms, 0, "nothing waits");
        l.publish(vec![entry(), entry()]).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let s = l.stats().await.unwrap();
        assert_eq!(s.depth, 2);
        assert!(s.lag_ms >= 30, "{s:?}");
        l.read("c", 2, std::time::Duration::ZERO).await.unwrap();
        let s = l.stats().await.unwrap();
        assert_eq!((s.depth, s.pending, s.lag_ms), (0, 2, 0), "{s:?}");
    }

    #[tokio::test]
    async fn bounded_publish_returns_what_did_not_fit() {
        let l = lane(3);
        let rest = l.publish((0..5).map(|_| entry()).collect()).await.unwrap();
        assert_eq!(rest.len(), 2);
        // Delivered-but-unacked entries still count against the bound.
        let got = l.read("c", 10, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(l.publish(vec![entry()]).await.unwrap().len(), 1);
        l.ack(&[got[0].id]).await.unwrap();
        assert_eq!(l.publish(vec![entry()]).await.unwrap().len(), 0);
    }

    #[tokio::test]
    async fn read_blocks_until_publish() {
        let l = Arc::new(lane(8));
        let reader = {
            let l = l.clone();
            tokio::spawn(async move { l.read("c", 1, Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        let e = entry();
        l.publish(vec![e.clone()]).await.unwrap();
        let got = reader.await.unwrap().unwrap();
        assert_eq!(got[0].entry, e);
        assert_eq!(got[0].deliveries, 1);
    }

    #[tokio::test]
    async fn read_times_out_empty() {
        let l = lane(1);
        assert!(
            l.read("c", 1, Duration::from_millis(5))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn a_dead_consumers_entries_are_claimed_and_redelivered() {
        let l = lane(8);
        let claimed = contract::dead_consumers_entries_are_claimed(&l).await;
        assert_eq!(
            l.ack(&[claimed[0].id, claimed[0].id]).await.unwrap(),
            1,
            "an ack counts once"
        );
        let s = l.stats().await.unwrap();
        assert_eq!(
            (s.depth, s.pending, s.published_total, s.acked_total),
            (0, 1, 2, 1)
        );
    }
}
