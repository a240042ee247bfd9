//! Concurrency groups across a tenant's runs, as GitHub Actions keeps
//! them: per group, the unit that holds the place and the one that waits.
//! A newer unit waiting supersedes the older one (and, with
//! `cancel_in_progress`, the holder); a unit that ends passes the place to
//! the one waiting. Each change is a [`Notice`]: an event recorded in the
//! run it is about (`group_admitted`, `group_superseded`), whose runner
//! acts on it. After a restart the places are rebuilt from the runs.

use std::sync::Arc;

use oshal_workflow::history::Event;

use super::Workflows;
use super::handle::Handle;
use crate::ticket::TenantId;

/// A concurrency group's place: the unit that holds it and the one that
/// waits, each as (run, unit).
#[derive(Debug, Default)]
pub(super) struct Slot {
    running: Option<(String, String)>,
    pending: Option<(String, String)>,
}

/// An event a group's change asks to record in a run.
#[derive(Debug)]
pub(super) struct Notice {
    run: String,
    tenant: TenantId,
    group: String,
    event: Event,
}

impl Notice {
    fn event_unit(&self) -> Option<&String> {
        match &self.event {
            Event::GroupAdmitted { unit, .. } | Event::GroupSuperseded { unit, .. } => Some(unit),
            _ => None,
        }
    }
}

/// The place a group's units queue for: a dry run's queue apart from the
/// real runs' (a dry run never takes a real run's place, supersedes its
/// unit or cancels its ticket).
pub(super) fn slot_of(group: &str, dry_run: bool) -> String {
    if dry_run {
        format!("dry-run:{group}")
    } else {
        group.to_owned()
    }
}

impl Workflows {
    /// Each group's place from the runs' units: the admitted one holds it,
    /// the newest waiting one waits (older ones are superseded), and a
    /// place nobody holds goes to the one waiting.
    pub(super) fn rebuild_groups(&self, handles: &[Arc<Handle>]) -> Vec<Notice> {
        let mut notices = Vec::new();
        let mut groups = self.inner.groups.lock().unwrap_or_else(|p| p.into_inner());
        // Run ids are UUIDv7: in the order the runs started.
        let mut ordered: Vec<&Arc<Handle>> = handles.iter().collect();
        ordered.sort_by(|a, b| a.id.cmp(&b.id));
        for h in ordered {
            let run = h.snapshot();
            for (group, unit, admitted) in run.group_places() {
                let group = slot_of(&group, run.dry_run);
                let slot = groups.entry((h.tenant.clone(), group.clone())).or_default();
                let place = (h.id.clone(), unit);
                if admitted && slot.running.is_none() {
                    slot.running = Some(place);
                } else if let Some((run, unit)) = slot.pending.replace(place) {
                    notices.push(Notice {
                        event: Event::GroupSuperseded {
                            unit,
                            by: h.id.clone(),
                            at: self.now(),
                        },
                        run,
                        tenant: h.tenant.clone(),
                        group,
                    });
                }
            }
        }
        for ((tenant, group), slot) in groups.iter_mut() {
            if slot.running.is_none()
                && let Some((run, unit)) = slot.pending.take()
            {
                slot.running = Some((run.clone(), unit.clone()));
                notices.push(Notice {
                    event: Event::GroupAdmitted {
                        unit,
                        at: self.now(),
                    },
                    run,
                    tenant: tenant.clone(),
                    group: group.clone(),
                });
            }
        }
        notices
    }

    pub(super) fn now(&self) -> i64 {
        self.inner.controller.clock().now_ms()
    }

    /// A unit asks for its group's place: it gets it if the place is free;
    /// else it waits, superseding the one waiting before it (and, with
    /// `cancel_in_progress`, the one holding the place).
    pub(super) fn enqueue(
        &self,
        tenant: &TenantId,
        group: &str,
        place: (String, String),
        cancel_in_progress: bool,
    ) -> Vec<Notice> {
        let mut groups = self.inner.groups.lock().unwrap_or_else(|p| p.into_inner());
        let slot = groups
            .entry((tenant.clone(), group.to_owned()))
            .or_default();
        let notice =
            |(run, unit): (String, String), event: fn(String, String, i64) -> Event| Notice {
                event: event(unit, place.0.clone(), self.now()),
                run,
                tenant: tenant.clone(),
                group: group.to_owned(),
            };
        let superseded = |unit, by, at| Event::GroupSuperseded { unit, by, at };
        let admitted = |unit, _by, at| Event::GroupAdmitted { unit, at };
        let mut out = Vec::new();
        if slot.running.is_none() {
            if let Some(old) = slot.pending.take() {
                out.push(notice(old, superseded));
            }
            slot.running = Some(place.clone());
            out.push(notice(place.clone(), admitted));
            return out;
        }
        if let Some(old) = slot.pending.replace(place.clone()) {
            out.push(notice(old, superseded));
        }
        if cancel_in_progress && let Some(running) = slot.running.clone() {
            out.push(notice(running, superseded));
        }
        out
    }

    /// A unit that held or waited for a place has ended: the place goes
    /// to the one waiting.
    pub(super) fn release(
        &self,
        tenant: &TenantId,
        group: &str,
        place: &(String, String),
    ) -> Vec<Notice> {
        let mut groups = self.inner.groups.lock().unwrap_or_else(|p| p.into_inner());
        let key = (tenant.clone(), group.to_owned());
        let Some(slot) = groups.get_mut(&key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if slot.pending.as_ref() == Some(place) {
            slot.pending = None;
        }
        if slot.running.as_ref() == Some(place) {
            slot.running = slot.pending.take();
            if let Some((run, unit)) = slot.running.clone() {
                out.push(Notice {
                    event: Event::GroupAdmitted {
                        unit,
                        at: self.now(),
                    },
                    run,
                    tenant: tenant.clone(),
                    group: group.to_owned(),
                });
            }
        }
        if slot.running.is_none() && slot.pending.is_none() {
            groups.remove(&key);
        }
        out
    }

    /// Records each notice in its run (whose runner then cancels a
    /// superseded unit's ticket); a place given to a unit that can no
    /// longer take it (its run ended) passes on at once.
    pub(super) async fn deliver(&self, notices: Vec<Notice>) {
        let store = self.inner.controller.store().clone();
        let mut queue: std::collections::VecDeque<Notice> = notices.into();
        while let Some(n) = queue.pop_front() {
            let Ok(h) = self.handle(&n.run, Some(&n.tenant)) else {
                continue;
            };
            let unit = n.event_unit().cloned();
            match h.record_command(store.as_ref(), n.event).await {
                // The run's runner cancels a superseded unit's ticket.
                Ok(_) => h.wake(),
                Err(e) => {
                    tracing::debug!(run = %n.run, group = %n.group, error = %e, "a group's notice did not fit its run");
                    if let Some(unit) = unit {
                        queue.extend(self.release(&n.tenant, &n.group, &(n.run.clone(), unit)));
                    }
                }
            }
        }
    }
}
