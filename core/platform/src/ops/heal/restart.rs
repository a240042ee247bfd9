//! The restart heal: the node of a slow bot the cause names is ordered to
//! restart (`Controller::restart_node`). It heals what the node's own
//! process holds (a wedged client, a leak), not a model server its bots
//! share; then the re-check fails and the heal says so. No shipped rule
//! takes it: an operator's rule may, in place of a drain.
//!
//! The plan holds only for a live, registered node: its action names the
//! run that will stop, and its dry run that run's bots and the attempts
//! they hold (they go back to the queue; an abandoned call is not
//! charged). The write orders that run, and only that run, to restart,
//! waits a few seconds (well within a built-in write's 10 s) to see the
//! new run, and records what it saw; the re-check tells the rest. A retry
//! after a lost answer orders nothing again: its record is found, or the
//! node is past the run named and that is recorded instead.

use oshal_ops::change::{ChangeEvent, ChangeKind};
use oshal_ops::heal::{Action, BlastRadius, DryRun, MAX_BLAST_TICKETS};
use oshal_ops::rule::HealRule;
use serde_json::json;
use std::time::Duration;

use super::super::writes::{Written, refused};
use super::super::{Inner, Operations, OpsError};
use crate::connector::call::CallRef;
use crate::controller::{NodeRestart, live_on};
use crate::ticket::TicketState;

/// How long the write waits to see the node back as a new run: within a
/// built-in connector write's 10 s limit, with room for the order itself.
const BACK_WITHIN: Duration = Duration::from_secs(5);

impl Operations {
    /// The restart of the node of `subject`, a slow bot, and its dry run.
    pub(super) async fn plan_restart_node(
        &self,
        rule: &HealRule,
        subject: &str,
    ) -> Result<(Action, DryRun), OpsError> {
        let refused = |why: String| OpsError::Conflict(format!("heal rule {}: {why}", rule.name));
        let bots = self.inner.controller.bots().await;
        let Some(bot) = bots.iter().find(|b| b.id.as_str() == subject) else {
            return Err(refused(format!("no bot {subject} is known")));
        };
        let Some(node) = bot.node.clone() else {
            return Err(refused(format!(
                "bot {subject} runs in the local pool, on no node: there is no process to restart"
            )));
        };
        let (mine, total) = live_on(&bots, &node);
        let Some(run) = self.inner.controller.node_run(&node).await? else {
            return Err(refused(format!("node {node} has no bot registered now")));
        };
        let mut held = Vec::new();
        for b in &mine {
            for state in [TicketState::Routed, TicketState::Running] {
                held.extend(self.named(state, None, Some(&b.id)).await?);
            }
        }
        let mut tenants: Vec<String> = held.iter().map(|t| t.tenant.to_string()).collect();
        tenants.sort();
        tenants.dedup();
        held.truncate(MAX_BLAST_TICKETS);
        let names: Vec<String> = mine.iter().map(|b| b.id.to_string()).collect();
        let medians = mine
            .iter()
            .map(|b| match b.attempt_ms {
                Some(ms) => format!("{} {ms} ms", b.id),
                None => format!("{} none recent", b.id),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let dry_run = DryRun {
            summary: format!(
                "restart node {node} (run {run}), whose bot {subject} is slow (attempts at the median: {medians}): it stops as on SIGTERM, the {total} attempts its bots {} hold go back to the queue (an abandoned call is not charged), and it starts again under its name as a new run with fresh connections and memory. A model server its bots share is not healed by this: then the re-check fails and says so",
                names.join(", ")
            ),
            before: json!({"node": node, "run": run, "bots": names, "held": total}),
            after: json!({"node": node, "run": "a new one", "bots": names, "held": 0}),
            blast: BlastRadius {
                tenants,
                bots: names.clone(),
                tickets: held.iter().map(|t| t.id.to_string()).collect(),
                tickets_total: total,
            },
        };
        Ok((Action::RestartNode { node, run }, dry_run))
    }
}

/// Orders run `run` of `node` to restart and waits up to [`BACK_WITHIN`]
/// to see it back as a new run. A retry after a lost answer
/// (`written_before`) answers as before and orders nothing; one whose
/// record was lost finds the node past `run`, orders nothing, and records
/// that.
pub(in crate::ops) async fn write(
    inner: &Inner,
    (node, run): (&str, &str),
    call: &CallRef,
    key: &str,
    written_before: bool,
) -> Written {
    if let Err(e) = crate::ticket::check_name("node", node) {
        return Ok(Err((400, json!({"error": format!("params.{e}")}))));
    }
    if written_before {
        return Ok(Ok((json!({"node": node, "restarted": true}), None)));
    }
    let controller = &inner.controller;
    let ordered = controller
        .restart_node(node, Some(run))
        .await
        .map_err(|e| e.to_string())?;
    if let NodeRestart::Moved { run: now } = &ordered
        && now.as_str() > run
    {
        let answer = json!({"node": node, "restarted": true, "run": run, "back_as": now});
        let change = ChangeEvent {
            kind: ChangeKind::NodeRestarted,
            subject: node.to_owned(),
            detail: format!(
                "node {node} was past run {run} when heal ticket {} (write {key}) came to restart it (an earlier try of this write, or someone else, restarted it): it runs as run {now}; nothing was ordered",
                call.ticket
            ),
            count: 0,
            at_ms: 0,
        };
        return Ok(Ok((answer, Some(change))));
    }
    let NodeRestart::Ordered { run, bots, held } = ordered else {
        return Ok(Err(refused(ordered.refusal(node))));
    };
    let deadline = tokio::time::Instant::now() + BACK_WITHIN;
    let back = loop {
        match controller.node_run(node).await {
            Ok(Some(now)) if now > run => break Some(now),
            _ if tokio::time::Instant::now() >= deadline => break None,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let names: Vec<String> = bots.iter().map(|b| b.to_string()).collect();
    let answer = json!({"node": node, "restarted": true, "run": run, "bots": names, "held": held, "back_as": back});
    let change = ChangeEvent {
        kind: ChangeKind::NodeRestarted,
        subject: node.to_owned(),
        detail: format!(
            "node {node} (run {run}) restarted by heal ticket {} (write {key}): the {held} attempts its bots {} held went back to the queue; {}",
            call.ticket,
            names.join(", "),
            match &back {
                Some(now) => format!("it came back as run {now}"),
                None => format!("it had not come back within {} s", BACK_WITHIN.as_secs()),
            }
        ),
        count: held,
        at_ms: 0,
    };
    Ok(Ok((answer, Some(change))))
}
