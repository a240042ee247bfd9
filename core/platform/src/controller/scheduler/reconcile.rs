//! Reconciling with the store: what became of writes the writer could not
//! confirm, and of records the store refused.
//!
//! A submission or a budget refused on a store failure may have landed all
//! the same (its commit went through, its answer was lost); once the store
//! answers again, [`Scheduler::reconcile_refused`] looks them up and
//! [`Scheduler::on_reconciled`] takes the store's word. A record the store
//! refused for its data will never land, so its ticket is stopped
//! ([`Scheduler::on_rejected`]). It must never run a refused submission its
//! submitter may retry as a new ticket, nor stop a ticket in a loop. The
//! store is read on spawned tasks whose answers come back as commands, so
//! the loop never waits on it. Start at [`Scheduler::reconcile_refused`].

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::main_loop::Command;
use super::state::Scheduler;
use crate::store::{RejectedRows, StoreError, Tenant, TicketUpdate};
use crate::ticket::{TenantId, Ticket, TicketId, TicketState, TransitionKind};

impl Scheduler {
    /// Starts a check of the refused submissions against the store, once it
    /// answers again (retrying with backoff until it does, or until the
    /// controller stops). A refused commit lands nothing after its refusal,
    /// so what the check finds is final.
    pub(super) fn reconcile_refused(&mut self) {
        if self.reconciling
            || (self.unreconciled.is_empty() && self.unreconciled_budgets.is_empty())
        {
            return;
        }
        self.reconciling = true;
        let ids = std::mem::take(&mut self.unreconciled);
        let budgets = std::mem::take(&mut self.unreconciled_budgets);
        let (store, inbox) = (self.store.clone(), self.inbox.clone());
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(100);
            loop {
                let read = async {
                    Ok::<_, StoreError>((store.unfinished().await?, store.tenants().await?))
                };
                match read.await {
                    Ok((found, tenants)) => {
                        let _ = inbox.send(Command::Reconciled {
                            ids,
                            budgets,
                            found,
                            tenants,
                        });
                        return;
                    }
                    Err(e) if !inbox.is_closed() => {
                        tracing::warn!(error = %e, refused = ids.len(), "cannot yet check refused submissions against the store");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                    }
                    Err(_) => return,
                }
            }
        });
    }

    /// Refused submissions the store holds after all. The submitter was told
    /// "store unavailable", so one without an idempotency key is cancelled,
    /// never run: a retry of it is a new ticket. One with a key is run: the
    /// submitter's retry with that key is answered with this ticket.
    /// Refused budgets: the scheduler takes the stored one, whichever it is.
    pub(super) fn on_reconciled(
        &mut self,
        ids: Vec<TicketId>,
        budgets: Vec<TenantId>,
        found: Vec<Ticket>,
        tenants: Vec<Tenant>,
    ) {
        self.reconciling = false;
        for id in budgets {
            if let Some(row) = tenants.iter().find(|t| t.id == id) {
                self.hold_budget(row);
            }
        }
        let ids: HashSet<TicketId> = ids.into_iter().collect();
        let now = self.clock.now_ms();
        for mut t in found {
            if !ids.contains(&t.id) || self.live.contains_key(&t.id) {
                continue;
            }
            if t.idempotency_key.is_none() {
                let why = "its submitter was told the store was unavailable, though the commit had landed; cancelled, never run";
                self.transition(&mut t, TransitionKind::Cancel, None, why, now);
                tracing::warn!(ticket = %t.id, "a refused submission had landed; cancelled");
                continue;
            }
            if let Some(tenant) = tenants.iter().find(|x| x.id == t.tenant) {
                self.budgets.know(tenant);
            }
            tracing::warn!(ticket = %t.id, "a refused submission with an idempotency key had landed; running it");
            let why = "its submitter was told the store was unavailable, though the commit had landed; run under its idempotency key";
            self.adopt(t, why, now);
        }
    }

    /// Stops the tickets whose records the store refused for their data, so
    /// none waits on a write that can never land: the scheduler's own copy
    /// if it still holds the ticket, else the store's (read in the
    /// background). A refused ledger row alone is only reported: its ticket
    /// went on, and its charge stays in the in-memory spend.
    pub(super) fn on_rejected(&mut self, rows: Vec<RejectedRows>) {
        let mut stored = Vec::new();
        for r in rows {
            if r.ledger_only {
                tracing::error!(ticket = %r.ticket, error = %r.error, "the store refused a ledger row; its charge is not recorded");
                continue;
            }
            if !self.stopped_rejected.insert(r.ticket) {
                tracing::error!(ticket = %r.ticket, error = %r.error, "the store refused the record that stops this ticket; restart recovery will find it");
                continue;
            }
            match self.live.remove(&r.ticket) {
                Some(t) => self.stop_rejected(t, &r.error),
                None => stored.push(r),
            }
        }
        if stored.is_empty() {
            return;
        }
        let (store, inbox) = (self.store.clone(), self.inbox.clone());
        tokio::spawn(async move {
            match store.unfinished().await {
                Ok(all) => {
                    let ids: HashSet<TicketId> = stored.iter().map(|r| r.ticket).collect();
                    let found = all.into_iter().filter(|t| ids.contains(&t.id)).collect();
                    let _ = inbox.send(Command::RejectedStored {
                        rows: stored,
                        found,
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, tickets = stored.len(), "cannot read tickets whose records the store refused; restart recovery will requeue them");
                }
            }
        });
    }

    pub(super) fn on_rejected_stored(&mut self, rows: Vec<RejectedRows>, found: Vec<Ticket>) {
        let errors: HashMap<TicketId, String> =
            rows.into_iter().map(|r| (r.ticket, r.error)).collect();
        for t in found {
            // Held again meanwhile (a requeue of the stored copy): ours wins.
            let t = self.live.remove(&t.id).unwrap_or(t);
            let error = errors.get(&t.id).map_or("", String::as_str);
            self.stop_rejected(t, error);
        }
    }

    /// Ends `t` as `dead` (or `cancelled`, before it ran) with the store's
    /// refusal as its reason. Its result, if any, is dropped: it is what the
    /// store could not hold.
    fn stop_rejected(&mut self, mut t: Ticket, error: &str) {
        let now = self.clock.now_ms();
        let why = format!("the store refused this ticket's record ({error}); it was stopped");
        t.result = None;
        t.error = Some(why.clone());
        let steps = steps_to_stop(t.state);
        for &step in steps {
            self.transition(&mut t, step, None, &why, now);
        }
        if steps.is_empty() {
            self.batch.updates.push(TicketUpdate::of(&t));
        }
        if !t.state.is_terminal() {
            self.live.insert(t.id, t);
        }
    }
}

/// The transitions that end a ticket in `state` whose record the store
/// refused: one that ran dies, one that never ran is cancelled, and a
/// finished one only has its row written again, without what was refused.
fn steps_to_stop(state: TicketState) -> &'static [TransitionKind] {
    match state {
        TicketState::Routed | TicketState::Running => {
            &[TransitionKind::Fail, TransitionKind::GiveUp]
        }
        TicketState::Failed => &[TransitionKind::GiveUp],
        TicketState::Queued | TicketState::AwaitingApproval => &[TransitionKind::Cancel],
        TicketState::Succeeded | TicketState::Dead | TicketState::Cancelled => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oshal_kernel::name::Named;

    #[test]
    fn every_unfinished_state_is_stopped_by_legal_steps_and_ends_terminal() {
        for &from in TicketState::all() {
            let mut state = from;
            for &step in steps_to_stop(from) {
                state = state
                    .on(step)
                    .unwrap_or_else(|| panic!("{step:?} is illegal from {state:?}"));
            }
            assert!(state.is_terminal(), "{from:?} ends in {state:?}");
            let ran = matches!(
                from,
                TicketState::Routed | TicketState::Running | TicketState::Failed
            );
            if ran {
                assert_eq!(state, TicketState::Dead, "{from:?} ran: it dies");
            } else if !from.is_terminal() {
                assert_eq!(state, TicketState::Cancelled, "{from:?} never ran");
            } else {
                assert_eq!(state, from, "finished: only its row is written");
            }
        }
    }
}
