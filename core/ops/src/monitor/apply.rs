//! The fold: a recorded event applied to the monitor. Nothing here reads
//! a clock or decides anything; replaying the journal gives the state the
//! live monitor had.

use oshal_kernel::clock::UnixMs;

use super::{
    CHANGE_LOOKBACK_MS, ChangeEvent, Event, MAX_CHANGES, MAX_TIMELINE, Monitor, Mute, compile,
};
use crate::alert::{Alert, AlertState, Fingerprint, Report, Signal};
use crate::change::ChangeKind;
use crate::incident::{Incident, IncidentStatus, Moment, TimelineEntry};
use crate::rule::matchers;

impl Monitor {
    /// Applies one recorded event taken at `at_ms`.
    pub fn apply(&mut self, event: &Event, at_ms: UnixMs) {
        match event {
            Event::SettingsSet { settings, .. } => {
                // Saved before a rule was shipped: it is offered now.
                self.settings = settings.clone();
                self.settings.offer_shipped();
                self.rules = compile(&self.settings);
            }
            Event::SilenceAdded { id, silence, by } => self.silences.push(Mute {
                id: id.clone(),
                what: silence.clone(),
                by: by.clone(),
                matchers: matchers("", &silence.matchers).ok(),
            }),
            Event::MaintenanceAdded { id, window, by } => self.windows.push(Mute {
                id: id.clone(),
                what: window.clone(),
                by: by.clone(),
                matchers: matchers("", &window.matchers).ok(),
            }),
            Event::AlertReceived {
                fingerprint,
                signal,
                state,
            } => self.receive(fingerprint, signal, *state, at_ms),
            Event::AlertAcknowledged { fingerprint, by } => {
                if let Some(a) = self.alerts.get_mut(fingerprint) {
                    a.acknowledged_by = Some(by.clone());
                    if a.state == AlertState::Firing {
                        a.state = AlertState::Acknowledged;
                    }
                    let inc = a.incident.clone();
                    self.note(
                        inc.as_deref(),
                        at_ms,
                        Moment::AlertAcknowledged,
                        by,
                        &fingerprint.0,
                    );
                }
            }
            Event::IncidentOpened {
                id,
                rule,
                group,
                title,
                alerts,
            } => {
                let mut inc = Incident {
                    id: id.clone(),
                    title: title.clone(),
                    rule: rule.clone(),
                    group: group.clone(),
                    status: IncidentStatus::Triggered,
                    severity: crate::alert::Severity::Info,
                    alerts: Vec::new(),
                    opened_ms: at_ms,
                    acknowledged_ms: None,
                    mitigated_ms: None,
                    resolved_ms: None,
                    timeline: vec![TimelineEntry {
                        at_ms,
                        moment: Moment::Opened,
                        subject: rule.clone(),
                        detail: title.clone(),
                    }],
                };
                for c in &self.changes {
                    if c.at_ms >= at_ms - CHANGE_LOOKBACK_MS {
                        inc.timeline.push(change_line(c));
                    }
                }
                self.incidents.push(inc);
                for fp in alerts {
                    self.join(id, fp, at_ms);
                }
            }
            Event::AlertJoined {
                incident,
                fingerprint,
            } => self.join(incident, fingerprint, at_ms),
            Event::IncidentMoved {
                id,
                action,
                by,
                note,
            } => {
                if let Some(inc) = self.incidents.iter_mut().find(|i| &i.id == id) {
                    let Some(to) = inc.status.after(*action) else {
                        return;
                    };
                    inc.status = to;
                    match to {
                        IncidentStatus::Acknowledged => inc.acknowledged_ms = Some(at_ms),
                        IncidentStatus::Mitigated => inc.mitigated_ms = Some(at_ms),
                        IncidentStatus::Resolved => inc.resolved_ms = Some(at_ms),
                        IncidentStatus::Triggered => inc.mitigated_ms = None,
                    }
                    let word: &'static str = to.into();
                    let detail = if note.is_empty() {
                        word.to_owned()
                    } else {
                        format!("{word}: {note}")
                    };
                    push(inc, at_ms, Moment::StatusChanged, by, detail);
                }
            }
            Event::ChangeRecorded { change } => {
                for inc in self.incidents.iter_mut().filter(|i| i.status.is_open()) {
                    let line = change_line(change);
                    push(inc, line.at_ms, line.moment, &line.subject, line.detail);
                }
                match change.kind {
                    ChangeKind::BudgetCapped => {
                        self.capped.insert(change.subject.clone());
                    }
                    ChangeKind::BudgetChanged => {
                        self.capped.remove(&change.subject);
                    }
                    _ => {}
                }
                self.changes.push(change.clone());
                if self.changes.len() > MAX_CHANGES {
                    self.changes.remove(0);
                }
            }
            Event::InvestigationStarted {
                incident,
                ticket,
                alert,
                plan,
                bounds,
                recheck_of,
            } => {
                *self.started.entry(incident.clone()).or_default() += 1;
                self.apply_start(incident, ticket, alert, plan, *bounds, at_ms);
                if let Some(heal) = recheck_of {
                    self.apply_recheck_started(incident, heal, ticket);
                }
            }
            Event::InvestigationSucceeded {
                incident,
                ticket,
                findings,
                diagnosis,
                cost_nanos,
            } => self.apply_succeeded(incident, ticket, findings, diagnosis, *cost_nanos, at_ms),
            Event::InvestigationFailed {
                incident,
                ticket,
                error,
            } => self.apply_failed(incident, ticket, error, at_ms),
            Event::PostmortemEdited { incident, edit, by } => self.apply_edit(incident, edit, by),
            Event::PostmortemPublished { incident, by } => self.apply_publish(incident, by, at_ms),
            Event::HealProposed { incident, heal } => self.apply_proposed(incident, heal, at_ms),
            Event::HealDecided {
                incident,
                heal,
                approved,
                by,
                note,
            } => self.apply_decided((incident, heal), *approved, by, note, at_ms),
            Event::HealStarted {
                incident,
                heal,
                ticket,
            } => self.apply_heal_started(incident, heal, ticket, at_ms),
            Event::HealFinished {
                incident,
                heal,
                succeeded,
                outcome,
            } => self.apply_heal_finished((incident, heal), *succeeded, outcome, at_ms),
            Event::HealRechecked {
                incident,
                heal,
                passed,
                detail,
            } => self.apply_rechecked((incident, heal), *passed, detail, at_ms),
        }
    }

    fn receive(&mut self, fp: &Fingerprint, s: &Signal, state: AlertState, at_ms: UnixMs) {
        let Some(a) = self.alerts.get_mut(fp) else {
            self.alerts.insert(
                fp.clone(),
                Alert {
                    fingerprint: fp.clone(),
                    name: s.name.clone(),
                    source: s.source,
                    state,
                    severity: s.severity,
                    labels: s.labels.clone(),
                    annotations: s.annotations.clone(),
                    summary: s.summary.clone(),
                    link: s.link.clone(),
                    first_ms: s.at_ms,
                    last_ms: at_ms,
                    resolved_ms: (state == AlertState::Resolved).then_some(s.at_ms),
                    count: 1,
                    acknowledged_by: None,
                    incident: None,
                },
            );
            return;
        };
        let was_active = a.state.is_active();
        if !s.name.is_empty() {
            a.name.clone_from(&s.name);
            a.severity = s.severity;
            a.labels.clone_from(&s.labels);
            a.annotations.clone_from(&s.annotations);
            a.summary.clone_from(&s.summary);
            if s.link.is_some() {
                a.link.clone_from(&s.link);
            }
        }
        a.count += 1;
        a.last_ms = at_ms;
        a.state = state;
        let moment = match (was_active, state.is_active()) {
            (true, false) => {
                a.resolved_ms = Some(s.at_ms);
                Some(Moment::AlertResolved)
            }
            (false, true) => {
                a.first_ms = s.at_ms;
                a.resolved_ms = None;
                a.acknowledged_by = None;
                Some(Moment::AlertFiring)
            }
            _ => None,
        };
        if state == AlertState::Acknowledged && s.report == Report::Acknowledged {
            let by: &'static str = s.source.into();
            a.acknowledged_by = Some(by.to_owned());
        }
        let (inc, name) = (a.incident.clone(), a.name.clone());
        if let Some(m) = moment {
            self.note(inc.as_deref(), at_ms, m, &fp.0, &name);
        }
    }

    fn join(&mut self, id: &str, fp: &Fingerprint, at_ms: UnixMs) {
        let Some(a) = self.alerts.get_mut(fp) else {
            return;
        };
        a.incident = Some(id.to_owned());
        let (severity, detail) = (a.severity, format!("{} ({})", a.name, a.summary));
        if let Some(inc) = self.incidents.iter_mut().find(|i| i.id == id) {
            if !inc.alerts.contains(fp) {
                inc.alerts.push(fp.clone());
            }
            inc.severity = inc.severity.max(severity);
            push(inc, at_ms, Moment::AlertJoined, &fp.0, detail);
        }
    }

    /// A line on the timeline of `incident`, if it is open.
    pub(super) fn note(
        &mut self,
        incident: Option<&str>,
        at_ms: UnixMs,
        m: Moment,
        subject: &str,
        detail: &str,
    ) {
        if let Some(inc) = incident
            .and_then(|id| self.incidents.iter_mut().find(|i| i.id == id))
            .filter(|i| i.status.is_open())
        {
            push(inc, at_ms, m, subject, detail.to_owned());
        }
    }
}

fn change_line(c: &ChangeEvent) -> TimelineEntry {
    let kind: &'static str = c.kind.into();
    TimelineEntry {
        at_ms: c.at_ms,
        moment: Moment::Change,
        subject: c.subject.clone(),
        detail: if c.detail.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}: {}", c.detail)
        },
    }
}

fn push(inc: &mut Incident, at_ms: UnixMs, moment: Moment, subject: &str, detail: String) {
    inc.timeline.push(TimelineEntry {
        at_ms,
        moment,
        subject: subject.to_owned(),
        detail,
    });
    if inc.timeline.len() > MAX_TIMELINE {
        inc.timeline.remove(1);
    }
}
