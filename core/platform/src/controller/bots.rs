//! The bots as the surfaces see them, and an operator's hold on one:
//! drain (Kubernetes' cordon and drain: the bot stays live, finishes what
//! it has taken, is routed nothing more, and the tickets still waiting in
//! its lane go back to the queue for other bots) and uncordon, of one bot
//! or of every live bot of a node at once (refused whole if that would
//! leave a skill no bot).
//!
//! A drain is kept in the journal (see `holds`): after a controller
//! restart a drained bot is still routed nothing, whether it is in the
//! pool the controller starts with or registers later.

use std::sync::atomic::Ordering;

use super::holds::{Cordon, cordoned};
use super::scheduler::Command;
use super::{BotView, Controller, ControllerError, Drained, NodeDrained, pace};
use crate::ticket::BotId;

/// Lane figures read at once by [`Controller::bots`].
const LANE_READS: usize = 256;

impl Controller {
    pub async fn bots(&self) -> Vec<BotView> {
        use futures::StreamExt;
        let handles = self.bot_handles();
        let since = self.inner.clock.now_ms() - pace::RECENT_MS;
        let live = !self.inner.shutdown.is_cancelled();
        // Every lane's figures at once, in the bots' order: over Redis the
        // reads share one pipelined connection, so a thousand bots cost
        // about one round trip's worth of waiting rather than a thousand.
        let mut reads = Vec::with_capacity(handles.len());
        for b in handles.iter() {
            if !b.counters.retired.load(Ordering::Relaxed) {
                reads.push(view_of(b, since, live));
            }
        }
        futures::stream::iter(reads)
            .buffered(LANE_READS)
            .collect()
            .await
    }

    /// Drains a live bot: see [`Drained`]. Kept in the journal before it
    /// answers.
    pub async fn drain_bot(&self, bot: &BotId) -> Result<Drained, ControllerError> {
        let id = bot.clone();
        self.held_change(
            "drained",
            |b| b.id == *bot,
            async || {
                self.ask(|reply| Command::DrainBot { bot: id, reply })
                    .await?
            },
        )
        .await
    }

    /// Drains every live bot of a node at once: see [`NodeDrained`]. Kept
    /// in the journal before it answers.
    pub async fn drain_node(&self, node: &str) -> Result<NodeDrained, ControllerError> {
        let name = node.to_owned();
        self.held_change(
            &format!("node {node} drained"),
            |b| b.node.as_deref() == Some(node),
            async || {
                self.ask(|reply| Command::DrainNode { node: name, reply })
                    .await?
            },
        )
        .await
    }

    /// Lets every drained bot of a node take work again: how many were
    /// drained, the attempts its bots hold, and those of its bots drained
    /// before a restart that have not registered since (they join taking
    /// work); `None` when no bot ever came from that node, nor is to come
    /// back drained.
    pub async fn uncordon_node(
        &self,
        node: &str,
    ) -> Result<Option<(u32, u32, Vec<BotId>)>, ControllerError> {
        let name = node.to_owned();
        self.held_change(
            &format!("node {node} uncordoned"),
            |b| b.node.as_deref() == Some(node),
            async || {
                let lifted = self
                    .lift_unregistered(&format!("node {node} uncordoned"), |c| {
                        c.node.as_deref() == Some(node)
                    })
                    .await?;
                let answer = self
                    .ask(|reply| Command::UncordonNode { node: name, reply })
                    .await?;
                Ok(answer.map(|(was, held)| (was, held, lifted)))
            },
        )
        .await
    }

    /// Lets a drained bot take work again: whether it was drained (`false`:
    /// nothing changed) and the attempts it holds; `None` when no such bot
    /// is known. A bot drained before a restart that has not registered
    /// again is known by its drain, and uncordoned before it returns.
    pub async fn uncordon_bot(&self, bot: &BotId) -> Result<Option<(bool, u32)>, ControllerError> {
        let id = bot.clone();
        self.held_change(
            "uncordoned",
            |b| b.id == *bot,
            async || {
                self.lift_unregistered("uncordoned", |c| c.bot == *bot)
                    .await?;
                self.ask(|reply| Command::Uncordon { bot: id, reply }).await
            },
        )
        .await
    }

    /// Lifts in the journal the drains `which` picks of bots drained
    /// before a restart that have not registered since: those bots. They
    /// have no handle for `held_change` to read, so the journal goes first
    /// (a failed write changes nothing), then the scheduler forgets them;
    /// the caller holds the holds lock.
    async fn lift_unregistered(
        &self,
        why: &str,
        which: impl Fn(&Cordon) -> bool,
    ) -> Result<Vec<BotId>, ControllerError> {
        let registered: std::collections::HashSet<BotId> =
            self.bot_handles().iter().map(|b| b.id.clone()).collect();
        let lifted: Vec<Cordon> = cordoned(self.inner.store.as_ref())
            .await?
            .into_iter()
            .filter(|c| !registered.contains(&c.bot) && which(c))
            .map(|c| Cordon {
                cordoned: false,
                ..c
            })
            .collect();
        self.keep_cordons(&lifted, why).await?;
        Ok(lifted.into_iter().map(|c| c.bot).collect())
    }
}

/// A bot as the surfaces see it, with its lane's figures (`None` when the
/// lane cannot be read).
async fn view_of(b: &super::BotHandle, since: i64, live: bool) -> BotView {
    let lane = match b.lane.stats().await {
        Ok(stats) => Some(stats),
        Err(e) => {
            tracing::debug!(bot = %b.id, error = %e, "lane figures unknown");
            None
        }
    };
    BotView {
        id: b.id.clone(),
        skills: b.skills.clone(),
        model: b.model.clone(),
        node: b.node.clone(),
        live: live && b.counters.live.load(Ordering::Relaxed),
        cordoned: b.counters.cordoned.load(Ordering::Relaxed),
        in_flight: b.counters.in_flight.load(Ordering::Relaxed) as u32,
        succeeded: b.counters.succeeded.load(Ordering::Relaxed),
        failed: b.counters.failed.load(Ordering::Relaxed),
        attempt_ms: b.counters.pace.median_since(since),
        lane,
    }
}
