//! An operator's (or a heal's) order to restart one node of a fleet:
//! Kubernetes' `kubectl rollout restart`, for one node.
//!
//! The order names the node's current run and goes on that node's own
//! control channel ([`Keys::control`](crate::lane::redis::Keys::control)),
//! so the publish's count of listeners says whether it was heard. The node
//! stops as on SIGTERM: its bots abandon their calls (an abandoned call is
//! not charged) and its registrations go, so the registry requeues what
//! they held at once; then `oshal node` starts again under the same name
//! as a new run, whose lanes drop whatever was addressed to the old one.
//! An order names one run, so a node carries it out once: the run that
//! comes back is not the one it named. A caller that names the run it
//! means (a heal does: the run its approval showed) is told the node has
//! [`NodeRestart::Moved`] on, and nothing is ordered, when that run is no
//! longer the node's: a retry after a lost answer restarts nothing twice.
//! The embedded pool runs in the controller's own process and has no node
//! to restart.

use super::{BotView, Controller, ControllerError, fleet};
use crate::lane::LaneError;
use crate::lane::redis::NodeControl;
use crate::ticket::BotId;

/// What an order to restart a node found, and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRestart {
    /// Ordered and heard: the run that will stop, its live bots, and the
    /// attempts they held (requeued as it stops).
    Ordered {
        run: String,
        bots: Vec<BotId>,
        held: u32,
    },
    /// No bot of it is registered now (lost, or stopped).
    NotLive,
    /// No bot of that node was ever seen.
    Unknown,
    /// Registered, but nothing listens on its control channel (its link
    /// to Redis is down, or it predates orders): nothing was done.
    Unheard { run: String },
    /// The run named is no longer the node's: it restarted already, or
    /// was started again since. Nothing was ordered; `run` is its run now.
    Moved { run: String },
    /// The bots run inside this controller's process: there is no node.
    Local,
}

impl NodeRestart {
    /// Why it was not ordered, in a sentence, and whether that is because
    /// no such node is known; `None` when it was ordered.
    pub fn refusal(&self, node: &str) -> Option<(bool, String)> {
        match self {
            NodeRestart::Ordered { .. } => None,
            NodeRestart::NotLive => Some((
                false,
                format!("node {node} has no bot registered now: nothing runs to restart"),
            )),
            NodeRestart::Unknown => Some((true, format!("no node {node} is known"))),
            NodeRestart::Moved { run } => Some((
                false,
                format!(
                    "node {node} runs as run {run} now, not the run named: nothing was ordered"
                ),
            )),
            NodeRestart::Unheard { run } => Some((
                false,
                format!(
                    "node {node} (run {run}) is registered but does not listen for orders (its link to Redis is down, or it predates them); nothing was done"
                ),
            )),
            NodeRestart::Local => Some((
                false,
                "this controller runs its bots in its own process: there is no node to restart"
                    .into(),
            )),
        }
    }
}

/// The live bots of `node` among `bots`, and the attempts they hold.
pub fn live_on<'a>(bots: &'a [BotView], node: &str) -> (Vec<&'a BotView>, u32) {
    let mine: Vec<&BotView> = bots
        .iter()
        .filter(|b| b.live && b.node.as_deref() == Some(node))
        .collect();
    let held = mine.iter().map(|b| b.in_flight).sum();
    (mine, held)
}

impl Controller {
    /// Orders node `node`'s current run to restart, or only run `named`
    /// of it when one is named: see [`NodeRestart`].
    pub async fn restart_node(
        &self,
        node: &str,
        named: Option<&str>,
    ) -> Result<NodeRestart, ControllerError> {
        let Some(redis) = &self.inner.fleet else {
            return Ok(NodeRestart::Local);
        };
        let Some(run) = self.node_run(node).await? else {
            let known = self
                .bot_handles()
                .iter()
                .any(|b| b.node.as_deref() == Some(node));
            return Ok(if known {
                NodeRestart::NotLive
            } else {
                NodeRestart::Unknown
            });
        };
        if named.is_some_and(|n| n != run) {
            return Ok(NodeRestart::Moved { run });
        }
        let views = self.bots().await;
        let (mine, held) = live_on(&views, node);
        let bots = mine.iter().map(|b| b.id.clone()).collect();
        let order = NodeControl::Restart {
            node: node.to_owned(),
            run: run.clone(),
        };
        let order = serde_json::to_string(&order).map_err(|e| LaneError::Backend(e.to_string()))?;
        let heard: u64 = redis::cmd("PUBLISH")
            .arg(redis.keys.control(node))
            .arg(order)
            .query_async(&mut redis.conn.clone())
            .await
            .map_err(crate::lane::redis::backend)?;
        if heard == 0 {
            return Ok(NodeRestart::Unheard { run });
        }
        tracing::warn!(node, %run, held, "node ordered to restart");
        Ok(NodeRestart::Ordered { run, bots, held })
    }

    /// The newest run of `node` registered now (two at once share a name:
    /// the later is the node now); `None` when none is, or not a fleet.
    pub async fn node_run(&self, node: &str) -> Result<Option<String>, ControllerError> {
        let Some(redis) = &self.inner.fleet else {
            return Ok(None);
        };
        let regs = fleet::registrations(&mut redis.conn.clone(), &redis.keys)
            .await
            .map_err(crate::lane::redis::backend)?;
        Ok(regs
            .into_values()
            .filter(|r| r.node == node)
            .map(|r| r.run)
            .max())
    }
}
