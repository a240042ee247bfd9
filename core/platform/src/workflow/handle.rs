//! A run as the adapter holds it: the run's state and the journal's next
//! number behind one lock (one writer numbers the history), a copy for
//! readers, and what wakes its runner. Recording writes the events to the
//! journal in one transaction before applying them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use oshal_workflow::history::{Event, RunState};
use oshal_workflow::run::Run;
use oshal_workflow::validate::Workflow;
use tokio::sync::Notify;

use super::{BOOK, Kinds, Started, WorkflowError};
use crate::store::{JournalEntry, Store};
use crate::ticket::TenantId;

/// A run and what drives it.
#[derive(Debug)]
pub(super) struct Handle {
    pub id: String,
    pub tenant: TenantId,
    /// The unit this run is a sub-workflow of, by its key.
    pub parent: Option<String>,
    /// The run and the journal's next number; held while recording, so
    /// one writer at a time numbers the history.
    pub(super) live: tokio::sync::Mutex<Live>,
    /// A copy for readers, taken again when read after a record (a
    /// record marks it stale; copying a large run at every event would
    /// cost more than the event).
    snapshot: Mutex<Snapshot>,
    /// The run's state, kept current by every record.
    state: Mutex<RunState>,
    pub(super) wake: Notify,
    pub(super) runner: AtomicBool,
}

#[derive(Debug)]
struct Snapshot {
    run: Arc<Run>,
    stale: bool,
}

#[derive(Debug)]
pub(super) struct Live {
    pub(super) run: Run,
    next_seq: u32,
}

impl Handle {
    pub fn new(id: String, tenant: TenantId, run: Run, next_seq: u32) -> Handle {
        Handle {
            id,
            tenant,
            parent: run.parent.clone(),
            snapshot: Mutex::new(Snapshot {
                run: Arc::new(run.clone()),
                stale: false,
            }),
            state: Mutex::new(run.state),
            live: tokio::sync::Mutex::new(Live { run, next_seq }),
            wake: Notify::new(),
            runner: AtomicBool::new(false),
        }
    }

    /// The run its journal entries describe. An event the run refuses is
    /// skipped, as it was when it was first applied.
    pub fn rebuild(entries: &[JournalEntry]) -> Result<Handle, String> {
        let first = entries
            .first()
            .filter(|e| e.seq == 0 && e.kind == "run_started")
            .ok_or("its history does not begin with run_started")?;
        let started: Started = serde_json::from_str(&first.body).map_err(|e| e.to_string())?;
        let workflow = Workflow::new(started.spec, &Kinds).map_err(|e| format!("{e:?}"))?;
        let mut run =
            Run::replay(Arc::new(workflow), &[started.event]).map_err(|e| e.to_string())?;
        for e in &entries[1..] {
            if e.kind == "run_upgraded" {
                // Recorded with the spec it moved to.
                let up: Started = serde_json::from_str(&e.body)
                    .map_err(|err| format!("entry {} does not parse: {err}", e.seq))?;
                let workflow = Workflow::new(up.spec, &Kinds).map_err(|e| format!("{e:?}"))?;
                if let Err(stale) = run.upgrade(Arc::new(workflow), &up.event) {
                    tracing::warn!(run = %first.session, seq = e.seq, %stale, "a recorded upgrade was skipped");
                }
                continue;
            }
            let event: Event = serde_json::from_str(&e.body)
                .map_err(|err| format!("entry {} does not parse: {err}", e.seq))?;
            if let Err(stale) = run.apply(&event) {
                tracing::warn!(run = %first.session, seq = e.seq, %stale, "a recorded event was skipped");
            }
        }
        let next_seq = entries.last().map_or(1, |e| e.seq + 1);
        Ok(Handle::new(
            first.session.clone(),
            first.tenant.clone(),
            run,
            next_seq,
        ))
    }

    /// The run as last recorded (or, while a record is under way, as
    /// just before it).
    pub fn snapshot(&self) -> Arc<Run> {
        let mut snap = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        if snap.stale
            && let Ok(live) = self.live.try_lock()
        {
            snap.run = Arc::new(live.run.clone());
            snap.stale = false;
        }
        snap.run.clone()
    }

    pub fn snapshot_state(&self) -> RunState {
        *self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the live run (waiting for a record under way to end).
    pub(super) async fn with_run<T>(&self, f: impl FnOnce(&Run) -> T) -> T {
        f(&self.live.lock().await.run)
    }

    /// True for the one caller that should start a runner.
    pub fn claim_runner(&self) -> bool {
        !self.runner.swap(true, Ordering::SeqCst)
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Records an operator's event, refused (changing nothing) if it does
    /// not fit the run; the run with it.
    pub async fn record_command(
        &self,
        store: &dyn Store,
        event: Event,
    ) -> Result<Arc<Run>, WorkflowError> {
        let mut live = self.live.lock().await;
        let mut check = live.run.clone();
        check
            .apply(&event)
            .map_err(|e| WorkflowError::Conflict(e.why))?;
        self.append(&mut live, store, std::slice::from_ref(&event))
            .await?;
        Ok(Arc::new(live.run.clone()))
    }

    /// Moves the run to `workflow`: checked on a copy first, then written
    /// to the journal with the spec, then applied.
    pub(super) async fn record_upgrade(
        &self,
        store: &dyn Store,
        workflow: Arc<Workflow>,
        event: Event,
    ) -> Result<Arc<Run>, WorkflowError> {
        let mut live = self.live.lock().await;
        let mut check = live.run.clone();
        check
            .upgrade(workflow.clone(), &event)
            .map_err(|e| WorkflowError::Conflict(e.why))?;
        let body = serde_json::to_string(&Started {
            spec: workflow.spec.clone(),
            event: event.clone(),
        })
        .expect("a spec serializes");
        let entry = JournalEntry {
            book: BOOK.into(),
            session: self.id.clone(),
            seq: live.next_seq,
            tenant: self.tenant.clone(),
            kind: event.name().into(),
            body,
            at_ms: event.at(),
        };
        if store.append_journal(std::slice::from_ref(&entry)).await? != 1 {
            return Err(WorkflowError::Conflict(format!(
                "run {}'s history from {} was written by another controller",
                self.id, live.next_seq
            )));
        }
        live.next_seq += 1;
        live.run = check;
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stale = true;
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = live.run.state;
        Ok(Arc::new(live.run.clone()))
    }

    /// Writes `events` to the journal in one transaction, then applies them.
    pub(super) async fn append(
        &self,
        live: &mut Live,
        store: &dyn Store,
        events: &[Event],
    ) -> Result<usize, WorkflowError> {
        let entries: Vec<JournalEntry> = events
            .iter()
            .enumerate()
            .map(|(k, e)| JournalEntry {
                book: BOOK.into(),
                session: self.id.clone(),
                seq: live.next_seq + u32::try_from(k).unwrap_or(u32::MAX),
                tenant: self.tenant.clone(),
                kind: e.name().into(),
                body: serde_json::to_string(e).expect("an event serializes"),
                at_ms: e.at(),
            })
            .collect();
        let written = store.append_journal(&entries).await?;
        if written != entries.len() {
            return Err(WorkflowError::Conflict(format!(
                "run {}'s history from {} was written by another controller",
                self.id, live.next_seq
            )));
        }
        live.next_seq += u32::try_from(entries.len()).unwrap_or(u32::MAX);
        let mut applied = 0;
        for e in events {
            match live.run.apply(e) {
                Ok(()) => applied += 1,
                Err(stale) => {
                    tracing::warn!(run = %self.id, %stale, "a recorded event was skipped")
                }
            }
        }
        self.snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stale = true;
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = live.run.state;
        Ok(applied)
    }
}
