//! One live run driven: decide, record, act, wait.
//!
//! Each turn the runner asks the run what it needs ([`Run::decide`]),
//! writes those events to the journal in one transaction, applies them,
//! then acts: the `node_scheduled` of the turn go to the controller in one
//! submission (each under its key, so a resubmission after a crash answers
//! the ticket already there), a `node_cancel_requested` cancels its
//! ticket. It then waits for a ticket of the run to start or end (the
//! controller's events, with a poll behind them), an operator's command,
//! or the run's next deadline.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use oshal_workflow::history::{Event, Failure, RunState};
use oshal_workflow::run::Memo;
use serde_json::Value;

use super::children::{self, Children};
use super::groups::slot_of;
use super::handle::Handle;
use super::tickets::{dry, ended, fit_history, flying_tasks, left_behind, outcome};
use super::{WorkflowError, Workflows};
use crate::controller::{ControllerError, CoreEvent};
use crate::store::{StoreError, TicketEnd};
use crate::ticket::{NewTicket, TenantId, TicketId, TicketState};

/// How often tickets in flight are read again without being told.
const POLL: Duration = Duration::from_secs(2);
/// The most tickets a poll on the timer reads (in turn, across polls).
const POLL_SAMPLE: usize = 256;
/// The fewest milliseconds between two heartbeats a unit's history keeps.
const BEAT_EVERY_MS: i64 = 1_000;
/// The shortest wait between two turns that nothing prompted.
const MIN_WAIT: Duration = Duration::from_millis(5);

/// Whether an error is an outage to wait out (not a refusal of the data).
pub(super) fn transient(e: &WorkflowError) -> bool {
    match e {
        WorkflowError::Store(e) | WorkflowError::Controller(ControllerError::Store(e)) => {
            !matches!(e, StoreError::Invalid(_) | StoreError::Corrupt(_))
        }
        _ => false,
    }
}

/// The outputs of memoized units of one tenant.
struct TenantMemo<'a> {
    tenant: &'a TenantId,
    memo: &'a HashMap<(TenantId, String), (Value, String)>,
}

impl Memo for TenantMemo<'_> {
    fn lookup(&self, input_hash: &str) -> Option<(Value, String)> {
        self.memo
            .get(&(self.tenant.clone(), input_hash.to_owned()))
            .cloned()
    }
}

/// Why the runner stopped.
enum Halt {
    Shutdown,
    Failed(String),
}

impl From<WorkflowError> for Halt {
    fn from(e: WorkflowError) -> Self {
        Halt::Failed(e.to_string())
    }
}

pub(super) struct Runner {
    workflows: Workflows,
    handle: Arc<Handle>,
    /// The run's tickets in flight: which unit and attempt each is.
    tickets: HashMap<TicketId, (String, u32)>,
    /// The places in concurrency groups its units hold or wait for, as
    /// (group, unit): released when a unit ends.
    places: std::collections::BTreeSet<(String, String)>,
    /// Something may have left a ticket behind (a command, a timeout, a
    /// stop): look for tickets to cancel at the next chance.
    moved: bool,
    /// The last ticket a sampled poll read: the next starts after it.
    polled: Option<TicketId>,
    /// A dry run: its tickets' writes are refused ([`dry`]).
    dry_run: bool,
    /// Its sub-workflows' runs in flight.
    children: Children,
}

impl Runner {
    pub fn new(workflows: Workflows, handle: Arc<Handle>) -> Runner {
        let dry_run = handle.snapshot().dry_run;
        Runner {
            workflows,
            handle,
            tickets: HashMap::new(),
            places: std::collections::BTreeSet::new(),
            moved: false,
            polled: None,
            dry_run,
            children: Children::default(),
        }
    }

    pub async fn run(mut self) {
        let id = self.handle.id.clone();
        loop {
            let halt = self.drive().await;
            self.handle.runner.store(false, Ordering::SeqCst);
            match halt {
                Halt::Shutdown => tracing::debug!(run = %id, "workflow runner stopped"),
                Halt::Failed(e) => {
                    tracing::error!(run = %id, error = %e, "workflow runner stopped");
                    return;
                }
            }
            // A command that came in as it stopped (a retry) goes on here.
            let again = self.handle.snapshot_state() == RunState::Running
                && !self.workflows.inner.cancel.is_cancelled()
                && self.handle.claim_runner();
            if !again {
                return;
            }
        }
    }

    async fn drive(&mut self) -> Halt {
        let controller = self.workflows.inner.controller.clone();
        let mut events = controller.subscribe();
        let mut backoff = Duration::from_millis(100);
        // Found again by their keys at the start, and after any outage (a
        // turn that failed part way may have recorded what it did not act on).
        let mut resumed = false;
        let mut last_poll = tokio::time::Instant::now();
        loop {
            let resuming = !resumed;
            let step = if resuming {
                self.resume().await
            } else {
                self.turn().await
            };
            match step {
                Ok(()) => {
                    resumed = true;
                    backoff = Duration::from_millis(100);
                    if resuming {
                        continue;
                    }
                }
                Err(e) if transient(&e) => {
                    tracing::warn!(run = %self.handle.id, error = %e, "the store is unavailable; the run waits");
                    resumed = false;
                    tokio::select! {
                        () = self.workflows.inner.cancel.cancelled() => return Halt::Shutdown,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Err(WorkflowError::Controller(ControllerError::ShuttingDown)) => {
                    return Halt::Shutdown;
                }
                Err(e) => return e.into(),
            }
            self.cancel_moved_on().await;
            if let Err(e) = self.sweep_children().await {
                tracing::warn!(run = %self.handle.id, error = %e, "a sub-workflow's end could not be recorded");
            }
            self.sync_places().await;
            let (state, deadline) = self.handle.with_run(|r| (r.state, r.next_deadline())).await;
            if state != RunState::Running {
                return Halt::Shutdown;
            }
            let now = controller.clock().now_ms();
            // A deadline already past that the run cannot act on yet (a
            // retry waiting for room in its fan-out) must not spin the loop.
            let wait = deadline.map_or(POLL, |d| {
                Duration::from_millis(u64::try_from(d - now).unwrap_or(0)).clamp(MIN_WAIT, POLL)
            });
            let mut lagged = false;
            tokio::select! {
                () = self.workflows.inner.cancel.cancelled() => return Halt::Shutdown,
                () = self.handle.wake.notified() => self.moved = true,
                () = tokio::time::sleep(wait) => {}
                event = events.recv() => match event {
                    Ok(CoreEvent::TicketsTransitioned { transitions }) => {
                        let mine: Vec<(TicketId, TicketState, i64)> = transitions
                            .iter()
                            .filter(|t| self.tickets.contains_key(&t.ticket))
                            .map(|t| (t.ticket, t.to, t.at_ms))
                            .collect();
                        if let Err(e) = self.observe(mine).await {
                            tracing::warn!(run = %self.handle.id, error = %e, "a ticket's news could not be recorded");
                        }
                    }
                    Ok(CoreEvent::TicketProgress { ticket, progress, .. }) => {
                        if let Err(e) = self.beat(ticket, progress).await {
                            tracing::warn!(run = %self.handle.id, error = %e, "a heartbeat could not be recorded");
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => lagged = true,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Halt::Shutdown,
                },
            }
            if lagged || last_poll.elapsed() >= POLL {
                last_poll = tokio::time::Instant::now();
                // Missed news (lagged) means any ticket: read them all;
                // else a sample, in turn, as a net under the events.
                let limit = if lagged { usize::MAX } else { POLL_SAMPLE };
                if let Err(e) = self.poll(limit).await {
                    tracing::warn!(run = %self.handle.id, error = %e, "the run's tickets could not be read");
                }
            }
        }
    }

    /// Cancels the tickets of attempts the run has moved on from without
    /// their answer (superseded in a group, timed out, stopped).
    async fn cancel_moved_on(&mut self) {
        if !std::mem::take(&mut self.moved) || self.tickets.is_empty() {
            return;
        }
        let tickets: Vec<(TicketId, String, u32)> = self
            .tickets
            .iter()
            .map(|(t, (u, a))| (*t, u.clone(), *a))
            .collect();
        let moved: Vec<TicketId> = self
            .handle
            .with_run(|r| {
                tickets
                    .into_iter()
                    .filter(|(_, unit, attempt)| left_behind(r, unit, *attempt))
                    .map(|(t, _, _)| t)
                    .collect()
            })
            .await;
        for t in moved {
            self.tickets.remove(&t);
            self.cancel_if_unended(t).await;
        }
    }

    /// Cancels a ticket that has not ended (a failed ticket that has no
    /// attempt left keeps its end: cancelling would rewrite it).
    async fn cancel_if_unended(&self, t: TicketId) {
        let controller = &self.workflows.inner.controller;
        match controller.ticket(t).await {
            Ok(v) if !ended(v.state, v.attempts, v.max_attempts) => {
                if let Err(e) = controller.cancel(t).await {
                    tracing::debug!(run = %self.handle.id, ticket = %t, error = %e, "a ticket the run moved on from was not cancelled");
                }
            }
            _ => {}
        }
    }

    /// Releases the group places of units that have ended since the last
    /// look (the place passes to the unit waiting for it).
    async fn sync_places(&mut self) {
        if self.places.is_empty() {
            return;
        }
        let now: std::collections::BTreeSet<(String, String)> = self
            .handle
            .with_run(|r| {
                r.group_places()
                    .into_iter()
                    .map(|(g, u, _)| (g, u))
                    .collect()
            })
            .await;
        let ended: Vec<(String, String)> = self.places.difference(&now).cloned().collect();
        self.places = now;
        let mut notices = Vec::new();
        for (group, unit) in ended {
            notices.extend(self.workflows.release(
                &self.handle.tenant,
                &slot_of(&group, self.dry_run),
                &(self.handle.id.clone(), unit),
            ));
        }
        self.workflows.deliver(notices).await;
    }

    /// After a restart or an outage: the units in flight are submitted
    /// again under their keys (which answer the tickets already there), a
    /// cancel asked for is asked again, and every ticket is read.
    async fn resume(&mut self) -> Result<(), WorkflowError> {
        self.places = self
            .handle
            .with_run(|r| {
                r.group_places()
                    .into_iter()
                    .map(|(g, u, _)| (g, u))
                    .collect()
            })
            .await;
        let (again, cancels) = self
            .handle
            .with_run(|run| {
                let cancels: Vec<(String, u32)> = run
                    .nodes
                    .iter()
                    .flat_map(|n| &n.units)
                    .filter(|u| u.in_flight() && u.cancel_requested)
                    .map(|u| (u.name.clone(), u.attempt))
                    .collect();
                (flying_tasks(run), cancels)
            })
            .await;
        if again.is_empty() {
            return Ok(());
        }
        self.submit(again).await?;
        for (unit, attempt) in cancels {
            self.cancel(&unit, attempt).await;
        }
        self.poll(usize::MAX).await
    }

    /// Decides and records until the run needs nothing more now, acting
    /// on each batch as soon as it is recorded: a large fan-out's first
    /// tickets are submitted while the rest are still being written.
    async fn turn(&mut self) -> Result<(), WorkflowError> {
        loop {
            let (acts, failed, more) = self.record_batch().await;
            self.act(acts).await?;
            if let Some(e) = failed {
                return Err(e);
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Decides and records until nothing is proposed or a batch hands out
    /// units (to be acted on before the next): what was recorded, why it
    /// stopped short, and whether the run may need more now.
    async fn record_batch(&mut self) -> (Vec<Event>, Option<WorkflowError>, bool) {
        let store = self.workflows.inner.controller.store().clone();
        let now = self.workflows.inner.controller.clock().now_ms();
        let mut acts = Vec::new();
        let mut live = self.handle.live.lock().await;
        let (failed, more) = loop {
            let next = {
                let memo = self
                    .workflows
                    .inner
                    .memo
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                let memo = TenantMemo {
                    tenant: &self.handle.tenant,
                    memo: &memo,
                };
                live.run.decide(now, &memo)
            };
            if next.is_empty() {
                break (None, false);
            }
            let next = next.into_iter().map(fit_history).collect::<Vec<_>>();
            let hands_out = next
                .iter()
                .any(|e| matches!(e, Event::NodeScheduled { .. } | Event::NodeMemoized { .. }));
            match self.handle.append(&mut live, store.as_ref(), &next).await {
                // What the run proposed and then refused would be
                // proposed again: stop rather than loop.
                Ok(0) => {
                    tracing::error!(run = %self.handle.id, "the run refused every event it proposed");
                    break (None, false);
                }
                Ok(_) => {
                    acts.extend(next);
                    if hands_out {
                        break (None, true);
                    }
                }
                // What was recorded before is still acted on.
                Err(e) => break (Some(e), false),
            }
        };
        if acts
            .iter()
            .any(|e| matches!(e, Event::NodeSucceeded { .. } | Event::NodeMemoized { .. }))
        {
            self.workflows.remember(&self.handle.tenant, &live.run);
        }
        (acts, failed, more)
    }

    /// Acts on recorded events: submits the scheduled tickets, asks for
    /// group places, cancels what the run moved on from.
    async fn act(&mut self, acts: Vec<Event>) -> Result<(), WorkflowError> {
        let mut submits = Vec::new();
        let mut notices = Vec::new();
        for e in acts {
            match e {
                Event::NodeScheduled { .. } => submits.push(e),
                Event::UnitQueued { unit, group, .. } => {
                    let cancel_in_progress = self
                        .handle
                        .with_run(|r| {
                            r.find(&unit).is_some_and(|(i, _)| {
                                r.workflow.spec.nodes[i]
                                    .concurrency
                                    .as_ref()
                                    .is_some_and(|c| c.cancel_in_progress)
                            })
                        })
                        .await;
                    self.places.insert((group.clone(), unit.clone()));
                    notices.extend(self.workflows.enqueue(
                        &self.handle.tenant,
                        &slot_of(&group, self.dry_run),
                        (self.handle.id.clone(), unit),
                        cancel_in_progress,
                    ));
                }
                Event::NodeCancelRequested { unit, attempt, .. } => {
                    self.moved = true;
                    self.cancel(&unit, attempt).await
                }
                Event::RunFinished { state, .. } => {
                    tracing::info!(run = %self.handle.id, ?state, "workflow run finished");
                    self.workflows.child_ended(&self.handle);
                    self.workflows.stop_orphans(Some(&self.handle.id)).await;
                }
                _ => {}
            }
        }
        if !notices.is_empty() {
            self.workflows.deliver(notices).await;
        }
        if !submits.is_empty() {
            self.submit(submits).await?;
        }
        Ok(())
    }

    /// Submits the tickets of `scheduled` in one write. A refusal of the
    /// ticket fails its unit (`refused`); an overload waits and tries again.
    async fn submit(&mut self, scheduled: Vec<Event>) -> Result<(), WorkflowError> {
        let (subs, scheduled): (Vec<Event>, Vec<Event>) = scheduled.into_iter().partition(
            |e| matches!(e, Event::NodeScheduled { task, .. } if task.kind == children::KIND),
        );
        if !subs.is_empty() {
            let started = self
                .children
                .start(&self.workflows, &self.handle, self.dry_run, subs)
                .await;
            self.record(started).await?;
        }
        let controller = self.workflows.inner.controller.clone();
        let correlation = TicketId::parse(&self.handle.id).ok().map(|t| t.to_string());
        let mut pending = scheduled;
        let mut backoff = Duration::from_millis(100);
        while !pending.is_empty() {
            let tickets: Vec<NewTicket> = pending
                .iter()
                .filter_map(|e| match e {
                    Event::NodeScheduled { task, key, .. } => Some(NewTicket {
                        kind: task.kind.clone(),
                        payload: dry(&task.kind, task.payload.clone(), self.dry_run),
                        tenant: Some(self.handle.tenant.to_string()),
                        idempotency_key: Some(key.clone()),
                        priority: task.priority,
                        skill: task.skill.clone(),
                        max_attempts: Some(1),
                        correlation_id: correlation.clone(),
                        ..NewTicket::default()
                    }),
                    _ => None,
                })
                .collect();
            let answers = controller.submit_many(tickets).await;
            let mut again = Vec::new();
            let mut refused = Vec::new();
            for (e, answer) in pending.into_iter().zip(answers) {
                let Event::NodeScheduled { unit, attempt, .. } = &e else {
                    continue;
                };
                match answer {
                    Ok(done) => {
                        self.tickets.insert(done.id, (unit.clone(), *attempt));
                    }
                    Err(ControllerError::ShuttingDown) => {
                        return Err(ControllerError::ShuttingDown.into());
                    }
                    Err(ControllerError::Overloaded { .. } | ControllerError::Store(_)) => {
                        again.push(e)
                    }
                    Err(err) => refused.push(Event::NodeFailed {
                        unit: unit.clone(),
                        attempt: *attempt,
                        failure: Failure::new("refused", format!("the ticket was refused: {err}")),
                        cost_nusd: 0,
                        at: controller.clock().now_ms(),
                    }),
                }
            }
            if !refused.is_empty() {
                self.record(refused).await?;
            }
            pending = again;
            if !pending.is_empty() {
                tokio::select! {
                    () = self.workflows.inner.cancel.cancelled() => return Err(ControllerError::ShuttingDown.into()),
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        Ok(())
    }

    async fn cancel(&mut self, unit: &str, attempt: u32) {
        let ticket = self
            .tickets
            .iter()
            .find(|(_, (u, a))| u == unit && *a == attempt)
            .map(|(t, _)| *t);
        if let Some(t) = ticket {
            self.cancel_if_unended(t).await;
        }
        self.children.cancel(&self.workflows, unit, attempt).await;
    }

    /// Records the ends of children that have ended; stops those the run
    /// moved on from.
    async fn sweep_children(&mut self) -> Result<(), WorkflowError> {
        if self.children.is_empty() {
            return Ok(());
        }
        // Children that could not start yet (the store, the live-run limit).
        let waiting = self.children.take_waiting();
        if !waiting.is_empty() {
            let started = self
                .children
                .start(&self.workflows, &self.handle, self.dry_run, waiting)
                .await;
            self.record(started).await?;
        }
        let flying = self.children.flying();
        let looks = self
            .handle
            .with_run(|r| {
                flying
                    .into_iter()
                    .map(|(id, (u, a))| (id, (r.in_flight(&u, a), left_behind(r, &u, a))))
                    .collect()
            })
            .await;
        let ends = self.children.sweep(&self.workflows, &looks).await;
        self.record(ends).await
    }

    /// Records events of tickets' news that still fit the run.
    async fn record(&mut self, events: Vec<Event>) -> Result<(), WorkflowError> {
        if events.is_empty() {
            return Ok(());
        }
        let store = self.workflows.inner.controller.store().clone();
        let mut live = self.handle.live.lock().await;
        // A start is recorded once: not again if the run has it, nor twice
        // in one batch (seen running, then again with its end).
        let mut started = std::collections::HashSet::new();
        let fit: Vec<Event> = events
            .into_iter()
            .filter(|e| match e {
                Event::NodeStarted {
                    unit,
                    attempt,
                    ticket,
                    ..
                } => {
                    live.run.in_flight(unit, *attempt)
                        && !live
                            .run
                            .unit(unit)
                            .is_some_and(|u| u.tickets.contains(ticket) && u.started_at.is_some())
                        && started.insert(ticket.clone())
                }
                Event::NodeSucceeded { unit, attempt, .. }
                | Event::NodeFailed { unit, attempt, .. }
                | Event::NodeHeartbeat { unit, attempt, .. } => live.run.in_flight(unit, *attempt),
                _ => true,
            })
            .map(fit_history)
            .collect();
        if fit.is_empty() {
            return Ok(());
        }
        self.handle.append(&mut live, store.as_ref(), &fit).await?;
        if fit.iter().any(|e| matches!(e, Event::NodeSucceeded { .. })) {
            self.workflows.remember(&self.handle.tenant, &live.run);
        }
        Ok(())
    }

    /// Turns tickets' transitions into the run's events.
    async fn observe(
        &mut self,
        news: Vec<(TicketId, TicketState, i64)>,
    ) -> Result<(), WorkflowError> {
        let mut events = Vec::new();
        let mut ended_now = Vec::new();
        for (ticket, state, at) in news {
            let Some((unit, attempt)) = self.tickets.get(&ticket).cloned() else {
                continue;
            };
            if state == TicketState::Running {
                events.push(Event::NodeStarted {
                    unit,
                    attempt,
                    ticket: ticket.to_string(),
                    at,
                });
            } else if ended(state, 1, 1) {
                ended_now.push((ticket, unit, attempt));
            }
        }
        // The ended tickets' answers, read together and narrowly (a
        // statement per few hundred, not three round trips per ticket).
        if !ended_now.is_empty() {
            let ids: Vec<TicketId> = ended_now.iter().map(|(t, _, _)| *t).collect();
            let mut ends = self.ends(&ids).await?;
            for (ticket, unit, attempt) in ended_now {
                if let Some(end) = ends.remove(&ticket) {
                    events.extend(outcome(&end, unit, attempt));
                }
            }
        }
        self.record(events).await
    }

    /// What the run's tickets `ids` tell of their ends, read together.
    async fn ends(&self, ids: &[TicketId]) -> Result<HashMap<TicketId, TicketEnd>, WorkflowError> {
        Ok(self
            .workflows
            .inner
            .controller
            .ticket_ends(ids, Some(&self.handle.tenant))
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect())
    }

    /// Records a unit's heartbeat (its ticket's progress report), at most
    /// one per unit per [`BEAT_EVERY_MS`] unless it tells of the end: the
    /// history keeps what a heartbeat timeout needs after a restart
    /// without a write per report.
    async fn beat(&mut self, ticket: TicketId, progress: Option<u8>) -> Result<(), WorkflowError> {
        let Some((unit, attempt)) = self.tickets.get(&ticket).cloned() else {
            return Ok(());
        };
        // Stamped here, on the clock the heartbeat timeout is kept by (a
        // node's clock may be off).
        let at = self.workflows.inner.controller.clock().now_ms();
        let due = self.handle.with_run(|r| {
            r.unit(&unit).is_some_and(|u| {
                u.attempt == attempt
                    && (progress == Some(100)
                        || u.heartbeat_at
                            .is_none_or(|last| at.saturating_sub(last) >= BEAT_EVERY_MS))
            })
        });
        if !due.await {
            return Ok(());
        }
        self.record(vec![Event::NodeHeartbeat {
            unit,
            attempt,
            progress,
            at,
        }])
        .await
    }

    /// Reads tickets in flight again (at most `limit`, the ones after the
    /// last read first): what the events may have missed.
    async fn poll(&mut self, limit: usize) -> Result<(), WorkflowError> {
        let mut events = Vec::new();
        let mut tickets: Vec<(TicketId, (String, u32))> =
            self.tickets.iter().map(|(t, u)| (*t, u.clone())).collect();
        tickets.sort_by_key(|(t, _)| *t);
        let from = tickets.partition_point(|(t, _)| Some(*t) <= self.polled);
        tickets.rotate_left(from);
        tickets.truncate(limit);
        self.polled = tickets.last().map(|(t, _)| *t);
        let looks: Vec<(bool, bool)> = self
            .handle
            .with_run(|run| {
                tickets
                    .iter()
                    .map(|(_, (u, a))| (run.in_flight(u, *a), left_behind(run, u, *a)))
                    .collect()
            })
            .await;
        let mut flying = Vec::with_capacity(tickets.len());
        for ((ticket, unit), (in_flight, behind)) in tickets.into_iter().zip(looks) {
            if in_flight {
                flying.push((ticket, unit));
                continue;
            }
            self.tickets.remove(&ticket);
            if behind {
                self.cancel_if_unended(ticket).await;
            }
        }
        let ids: Vec<TicketId> = flying.iter().map(|(t, _)| *t).collect();
        let mut ends = self.ends(&ids).await?;
        for (ticket, (unit, attempt)) in flying {
            let Some(end) = ends.remove(&ticket) else {
                continue;
            };
            if end.state == TicketState::Running {
                events.push(Event::NodeStarted {
                    unit: unit.clone(),
                    attempt,
                    ticket: ticket.to_string(),
                    at: end.started_at_ms.unwrap_or(end.updated_at_ms),
                });
            }
            events.extend(outcome(&end, unit, attempt));
        }
        self.record(events).await
    }
}
