//! Monitor: one tenant's alerts and incidents, as a fold over recorded
//! events.
//!
//! [`Monitor::decide`] reads an [`Input`] (a signal from a source, an
//! operator's acknowledgement or move, new settings, a silence, a
//! maintenance window, a change event, a heal proposed, approved, started
//! or finished) against the state and proposes the
//! [`Event`]s it leads to; the adapter records them durably, then
//! [`Monitor::apply`]s each. After a restart the recorded events are
//! applied again and the state is the same: nothing in `apply` reads a
//! clock or decides anything.
//!
//! Deduplication: reports of one fingerprint are one alert (its `count`
//! rises). Correlation: the first rule that matches a firing alert takes
//! it; an open incident of the rule and group takes it in; else the
//! group's alerts within the rule's window, once `threshold` of them
//! count, open one. A silenced or maintained alert opens nothing. This
//! file decides; `apply.rs` folds. Pure logic.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use specta::Type;

use oshal_kernel::clock::UnixMs;

use crate::alert::{Alert, AlertState, Fingerprint, Labels, Report, Signal};
use crate::diagnose::Diagnosis;
use crate::evidence::Bounds;
use crate::heal::{Action, DryRun, Heal};
use crate::incident::{Incident, IncidentAction, IncidentStatus};
use crate::investigation::{Findings, Investigation};
use crate::report::{Postmortem, PostmortemEdit};
use crate::rule::{
    Invalid, MaintenanceWindow, Matcher, ResolveOn, Settings, Silence, all_match, matchers,
};
use crate::runbook::Plan;

/// Change events kept (the oldest go first).
pub const MAX_CHANGES: usize = 1000;
/// Entries one incident's timeline keeps (the oldest go first, `Opened`
/// stays).
pub const MAX_TIMELINE: usize = 2000;
/// How far before an incident opened a change event is still its evidence.
pub const CHANGE_LOOKBACK_MS: i64 = 3_600_000;
/// The most alerts an incident opens with (its event stays well within
/// what one journal entry holds).
pub const MAX_OPENING: usize = 500;
/// Silences, and maintenance windows, one tenant keeps.
pub const MAX_MUTES: usize = 1000;
/// How far ahead of its receipt a change event may say it happened.
pub const MAX_CHANGE_AHEAD_MS: i64 = 300_000;
/// Who the monitor's own moves are by.
pub const MONITOR: &str = "monitor";

pub use crate::change::{ChangeEvent, ChangeKind};

/// What the monitor is asked to take in.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Signal(Signal),
    AcknowledgeAlert {
        fingerprint: Fingerprint,
        by: String,
    },
    Incident {
        id: String,
        action: IncidentAction,
        by: String,
        note: String,
    },
    Settings {
        settings: Settings,
        by: String,
    },
    Silence {
        silence: Silence,
        by: String,
    },
    Maintenance {
        window: MaintenanceWindow,
        by: String,
    },
    Change(ChangeEvent),
    /// A Gather ticket was submitted for an incident.
    StartInvestigation {
        incident: String,
        ticket: String,
        alert: String,
        plan: Plan,
        bounds: Bounds,
        /// The heal this investigation re-checks.
        recheck_of: Option<String>,
    },
    /// A Gather ticket succeeded with these findings.
    FinishInvestigation {
        ticket: String,
        findings: Findings,
        cost_nanos: i64,
    },
    /// A Gather ticket failed for good.
    FailInvestigation {
        ticket: String,
        error: String,
    },
    /// A person's edit of an incident's postmortem draft.
    EditPostmortem {
        incident: String,
        edit: PostmortemEdit,
        by: String,
    },
    /// Publish an incident's postmortem (frozen from then on).
    PublishPostmortem {
        incident: String,
        by: String,
    },
    /// A heal of an investigation's diagnosis, by a heal rule, with the
    /// action and dry run the adapter worked out.
    ProposeHeal {
        incident: String,
        investigation: String,
        rule: String,
        action: Action,
        dry_run: DryRun,
    },
    /// A person approves or denies a pending heal.
    DecideHeal {
        incident: String,
        heal: String,
        approve: bool,
        by: String,
        note: String,
    },
    /// An approved heal's ticket was submitted.
    StartHeal {
        incident: String,
        heal: String,
        ticket: String,
    },
    /// A heal's ticket ended: what the write answered, or why it failed.
    FinishHeal {
        ticket: String,
        outcome: Result<String, String>,
    },
    /// An approved heal whose ticket could not be released in time: it
    /// fails, with why, and writes nothing.
    AbandonHeal {
        incident: String,
        heal: String,
        why: String,
    },
}

/// A recorded fact. Its `kind` is the journal entry's kind.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema, strum::IntoStaticStr,
)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Event {
    SettingsSet {
        settings: Settings,
        by: String,
    },
    SilenceAdded {
        id: String,
        silence: Silence,
        by: String,
    },
    MaintenanceAdded {
        id: String,
        window: MaintenanceWindow,
        by: String,
    },
    AlertReceived {
        fingerprint: Fingerprint,
        signal: Signal,
        state: AlertState,
    },
    AlertAcknowledged {
        fingerprint: Fingerprint,
        by: String,
    },
    IncidentOpened {
        id: String,
        rule: String,
        group: Labels,
        title: String,
        alerts: Vec<Fingerprint>,
    },
    AlertJoined {
        incident: String,
        fingerprint: Fingerprint,
    },
    IncidentMoved {
        id: String,
        action: IncidentAction,
        by: String,
        note: String,
    },
    ChangeRecorded {
        change: ChangeEvent,
    },
    InvestigationStarted {
        incident: String,
        ticket: String,
        alert: String,
        plan: Plan,
        bounds: Bounds,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recheck_of: Option<String>,
    },
    InvestigationSucceeded {
        incident: String,
        ticket: String,
        findings: Findings,
        /// Decided when the findings were taken: a replay keeps it even
        /// if the ranking changes later.
        diagnosis: Diagnosis,
        #[specta(type = specta_typescript::Number)]
        cost_nanos: i64,
    },
    InvestigationFailed {
        incident: String,
        ticket: String,
        error: String,
    },
    PostmortemEdited {
        incident: String,
        edit: PostmortemEdit,
        by: String,
    },
    /// Frozen as the record then supports it (with the edits laid over).
    PostmortemPublished {
        incident: String,
        by: String,
    },
    HealProposed {
        incident: String,
        heal: Box<Heal>,
    },
    HealDecided {
        incident: String,
        heal: String,
        approved: bool,
        by: String,
        note: String,
    },
    HealStarted {
        incident: String,
        heal: String,
        ticket: String,
    },
    HealFinished {
        incident: String,
        heal: String,
        succeeded: bool,
        outcome: String,
    },
    HealRechecked {
        incident: String,
        heal: String,
        passed: bool,
        detail: String,
    },
}

impl Event {
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

/// Why an input was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpsError {
    #[error("no {what} {id}")]
    NotFound { what: &'static str, id: String },
    #[error("incident {id} is {from:?}; it cannot {action:?}")]
    Conflict {
        id: String,
        from: IncidentStatus,
        action: IncidentAction,
    },
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// A postmortem that may not be edited or published now.
    #[error("the postmortem of {id} {reason}")]
    Postmortem { id: String, reason: String },
    /// A heal that may not be proposed, approved or started now.
    #[error("heal {id} {reason}")]
    Heal { id: String, reason: String },
}

/// A silence or window in force, with its matchers parsed.
#[derive(Debug, Clone)]
struct Mute<T> {
    id: String,
    what: T,
    by: String,
    matchers: Option<Vec<Matcher>>,
}

/// One tenant's monitor.
#[derive(Debug, Clone)]
pub struct Monitor {
    settings: Settings,
    /// Each rule's matchers; `None` for one that no longer parses (on a
    /// replay after the matcher syntax changed), which matches nothing.
    rules: Vec<Option<Vec<Matcher>>>,
    alerts: BTreeMap<Fingerprint, Alert>,
    incidents: Vec<Incident>,
    silences: Vec<Mute<Silence>>,
    windows: Vec<Mute<MaintenanceWindow>>,
    changes: Vec<ChangeEvent>,
    /// Each incident's investigations.
    investigations: BTreeMap<String, Vec<Investigation>>,
    /// Each incident's postmortem edits (merged) and who made the last.
    edits: BTreeMap<String, (PostmortemEdit, String)>,
    /// Published postmortems, frozen.
    published: BTreeMap<String, Postmortem>,
    /// Each incident's heals.
    heals: BTreeMap<String, Vec<Heal>>,
    /// Investigations ever started per incident (never lowered when the
    /// oldest are let go): the next one's number.
    started: BTreeMap<String, u32>,
    /// Tenants whose budget a heal's cap changed last (`budget_capped`,
    /// until a `budget_changed`): kept apart from the change log, which
    /// lets its oldest go.
    capped: BTreeSet<String>,
}

impl Default for Monitor {
    fn default() -> Self {
        let settings = Settings::default();
        let rules = compile(&settings);
        Self {
            settings,
            rules,
            alerts: BTreeMap::new(),
            incidents: Vec::new(),
            silences: Vec::new(),
            windows: Vec::new(),
            changes: Vec::new(),
            investigations: BTreeMap::new(),
            edits: BTreeMap::new(),
            published: BTreeMap::new(),
            heals: BTreeMap::new(),
            started: BTreeMap::new(),
            capped: BTreeSet::new(),
        }
    }
}

fn compile(s: &Settings) -> Vec<Option<Vec<Matcher>>> {
    s.rules
        .iter()
        .map(|r| matchers("", &r.matchers).ok())
        .collect()
}

/// Whether parsed matchers hold; matchers that did not parse match
/// nothing (a silence or rule never widens by failing).
fn holds(ms: &Option<Vec<Matcher>>, labels: &Labels) -> bool {
    ms.as_ref().is_some_and(|ms| all_match(ms, labels))
}

fn group_of(by: &[String], labels: &Labels) -> Labels {
    by.iter()
        .map(|k| (k.clone(), labels.get(k).cloned().unwrap_or_default()))
        .collect()
}

impl Monitor {
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Alerts, newest report first.
    pub fn alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.alerts.values().collect();
        v.sort_by_key(|a| std::cmp::Reverse(a.last_ms));
        v
    }

    pub fn alert(&self, fp: &Fingerprint) -> Option<&Alert> {
        self.alerts.get(fp)
    }

    /// Incidents, newest first.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.iter().rev()
    }

    pub fn incident(&self, id: &str) -> Option<&Incident> {
        self.incidents.iter().find(|i| i.id == id)
    }

    /// Change events, oldest first.
    pub fn changes(&self) -> &[ChangeEvent] {
        &self.changes
    }

    /// The tenants whose budget a heal's cap changed last: a raise heal
    /// is neither proposed nor approved for them until a person sets
    /// their budget again.
    pub fn capped(&self) -> &BTreeSet<String> {
        &self.capped
    }

    /// How many investigations of `incident` were ever started.
    pub fn investigations_started(&self, incident: &str) -> u32 {
        self.started.get(incident).copied().unwrap_or(0)
    }

    /// Silences (id, silence, by), in force or not.
    pub fn silences(&self) -> impl Iterator<Item = (&str, &Silence, &str)> {
        self.silences
            .iter()
            .map(|m| (m.id.as_str(), &m.what, m.by.as_str()))
    }

    /// Maintenance windows (id, window, by).
    pub fn windows(&self) -> impl Iterator<Item = (&str, &MaintenanceWindow, &str)> {
        self.windows
            .iter()
            .map(|m| (m.id.as_str(), &m.what, m.by.as_str()))
    }

    /// The events `input`, taken at `at_ms`, leads to (none: nothing
    /// changes, as for an acknowledgement of an alert nobody knows).
    pub fn decide(&self, input: Input, at_ms: UnixMs) -> Result<Vec<Event>, OpsError> {
        match input {
            Input::Signal(s) => Ok(self.on_signal(s, at_ms)),
            Input::AcknowledgeAlert { fingerprint, by } => {
                let a = self
                    .alerts
                    .get(&fingerprint)
                    .ok_or_else(|| OpsError::NotFound {
                        what: "alert",
                        id: fingerprint.0.clone(),
                    })?;
                Ok(if a.state.is_active() {
                    vec![Event::AlertAcknowledged { fingerprint, by }]
                } else {
                    Vec::new()
                })
            }
            Input::Incident {
                id,
                action,
                by,
                note,
            } => {
                let inc = self.incident(&id).ok_or_else(|| OpsError::NotFound {
                    what: "incident",
                    id: id.clone(),
                })?;
                if inc.status.after(action).is_none() || action == IncidentAction::Retrigger {
                    return Err(OpsError::Conflict {
                        id,
                        from: inc.status,
                        action,
                    });
                }
                let expired = if action == IncidentAction::Resolve {
                    self.expire_pending(&id)
                } else {
                    Vec::new()
                };
                let mut events = vec![Event::IncidentMoved {
                    id,
                    action,
                    by,
                    note,
                }];
                events.extend(expired);
                Ok(events)
            }
            Input::Settings { mut settings, by } => {
                // What was offered stays offered, whatever the new
                // settings say (a file edited by hand may hold less).
                for name in &self.settings.offered {
                    if !settings.offered.contains(name) {
                        settings.offered.push(name.clone());
                    }
                }
                settings.offer_shipped();
                settings.check()?;
                Ok(vec![Event::SettingsSet { settings, by }])
            }
            Input::Silence { silence, by } => {
                silence.check()?;
                if self.silences.len() >= MAX_MUTES {
                    return Err(OpsError::Invalid(Invalid {
                        path: "matchers".into(),
                        reason: format!("a tenant keeps at most {MAX_MUTES} silences"),
                        limit: Some(MAX_MUTES as u64),
                    }));
                }
                let id = format!("S-{}", self.silences.len() + 1);
                Ok(vec![Event::SilenceAdded { id, silence, by }])
            }
            Input::Maintenance { window, by } => {
                window.check()?;
                if self.windows.len() >= MAX_MUTES {
                    return Err(OpsError::Invalid(Invalid {
                        path: "matchers".into(),
                        reason: format!("a tenant keeps at most {MAX_MUTES} maintenance windows"),
                        limit: Some(MAX_MUTES as u64),
                    }));
                }
                let id = format!("M-{}", self.windows.len() + 1);
                Ok(vec![Event::MaintenanceAdded { id, window, by }])
            }
            Input::StartInvestigation {
                incident,
                ticket,
                alert,
                plan,
                bounds,
                recheck_of,
            } => self.decide_start(incident, ticket, alert, plan, bounds, recheck_of),
            Input::FinishInvestigation {
                ticket,
                findings,
                cost_nanos,
            } => self.decide_finish(&ticket, findings, cost_nanos),
            Input::FailInvestigation { ticket, error } => self.decide_fail(&ticket, error),
            Input::EditPostmortem { incident, edit, by } => self.decide_edit(incident, edit, by),
            Input::PublishPostmortem { incident, by } => self.decide_publish(incident, by),
            Input::ProposeHeal {
                incident,
                investigation,
                rule,
                action,
                dry_run,
            } => self.decide_propose(incident, &investigation, &rule, action, dry_run, at_ms),
            Input::DecideHeal {
                incident,
                heal,
                approve,
                by,
                note,
            } => self.decide_decide(incident, heal, approve, by, note),
            Input::StartHeal {
                incident,
                heal,
                ticket,
            } => self.decide_start_heal(incident, heal, ticket),
            Input::FinishHeal { ticket, outcome } => self.decide_finish_heal(&ticket, outcome),
            Input::AbandonHeal {
                incident,
                heal,
                why,
            } => self.decide_abandon(incident, heal, &why),
            Input::Change(mut change) => {
                for (field, s) in [("subject", &change.subject), ("detail", &change.detail)] {
                    if s.len() > 1024 || s.contains('\0') || (field == "subject" && s.is_empty()) {
                        return Err(OpsError::Invalid(Invalid {
                            path: field.into(),
                            reason: "must be 1 to 1024 bytes, without NUL".into(),
                            limit: Some(1024),
                        }));
                    }
                }
                if change.at_ms == 0 {
                    change.at_ms = at_ms;
                } else if change.at_ms < 0 || change.at_ms > at_ms + MAX_CHANGE_AHEAD_MS {
                    return Err(OpsError::Invalid(Invalid {
                        path: "at_ms".into(),
                        reason:
                            "must be a unix time in ms, not ahead of now by more than 5 minutes"
                                .into(),
                        limit: None,
                    }));
                }
                Ok(vec![Event::ChangeRecorded { change }])
            }
        }
    }

    /// The state a report leads to, received at `at_ms` (silences and
    /// windows are in force by the time of receipt: a source repeats a
    /// firing alert with the time it began).
    fn state_of(&self, s: &Signal, prior: Option<&Alert>, at_ms: UnixMs) -> AlertState {
        let labels = if s.labels.is_empty() {
            prior.map_or(&s.labels, |a| &a.labels)
        } else {
            &s.labels
        };
        let in_force = |start: UnixMs, end: UnixMs| (start..end).contains(&at_ms);
        match s.report {
            Report::Resolved => AlertState::Resolved,
            _ if self.windows.iter().any(|w| {
                in_force(w.what.starts_ms, w.what.ends_ms) && holds(&w.matchers, labels)
            }) =>
            {
                AlertState::Maintenance
            }
            _ if self.silences.iter().any(|m| {
                in_force(m.what.starts_ms, m.what.ends_ms) && holds(&m.matchers, labels)
            }) =>
            {
                AlertState::Suppressed
            }
            Report::Acknowledged => AlertState::Acknowledged,
            Report::Firing
                if prior.is_some_and(|a| a.state.is_active() && a.acknowledged_by.is_some()) =>
            {
                AlertState::Acknowledged
            }
            Report::Firing => AlertState::Firing,
        }
    }

    fn on_signal(&self, signal: Signal, at_ms: UnixMs) -> Vec<Event> {
        let fp = signal.fingerprint(&self.settings.fingerprint_by);
        let prior = self.alerts.get(&fp);
        if signal.name.is_empty() && prior.is_none() {
            // An acknowledge or resolve by key of an alert never seen.
            return Vec::new();
        }
        let was_active = prior.is_some_and(|a| a.state.is_active());
        if signal.report == Report::Acknowledged && !was_active {
            // An acknowledgement of an alert resolved (or never firing)
            // does not bring it back.
            return Vec::new();
        }
        let state = self.state_of(&signal, prior, at_ms);
        let began_ms = signal.at_ms;
        let labels = if signal.labels.is_empty() {
            prior.map(|a| a.labels.clone()).unwrap_or_default()
        } else {
            signal.labels.clone()
        };
        let mut events = vec![Event::AlertReceived {
            fingerprint: fp.clone(),
            signal,
            state,
        }];
        let open = prior
            .and_then(|a| a.incident.as_deref())
            .and_then(|id| self.incident(id))
            .filter(|i| i.status.is_open());
        if state == AlertState::Resolved {
            if let Some(inc) = open
                && let Some(note) = self.resolves(inc, &fp)
            {
                events.push(Event::IncidentMoved {
                    id: inc.id.clone(),
                    action: IncidentAction::Resolve,
                    by: MONITOR.into(),
                    note,
                });
                events.extend(self.expire_pending(&inc.id));
            }
            return events;
        }
        if matches!(state, AlertState::Suppressed | AlertState::Maintenance) {
            return events;
        }
        if let Some(inc) = open {
            if !was_active && inc.status == IncidentStatus::Mitigated {
                events.push(Event::IncidentMoved {
                    id: inc.id.clone(),
                    action: IncidentAction::Retrigger,
                    by: MONITOR.into(),
                    note: format!("alert {fp} fired again after the mitigation"),
                });
            }
            return events;
        }
        let Some(r) = self.rules.iter().position(|ms| holds(ms, &labels)) else {
            return events;
        };
        let rule = &self.settings.rules[r];
        let group = group_of(&rule.group_by, &labels);
        if let Some(inc) = self
            .incidents
            .iter()
            .rev()
            .find(|i| i.status.is_open() && i.rule == rule.name && i.group == group)
        {
            events.push(Event::AlertJoined {
                incident: inc.id.clone(),
                fingerprint: fp.clone(),
            });
            if inc.status == IncidentStatus::Mitigated {
                events.push(Event::IncidentMoved {
                    id: inc.id.clone(),
                    action: IncidentAction::Retrigger,
                    by: MONITOR.into(),
                    note: format!("alert {fp} joined after the mitigation"),
                });
            }
            return events;
        }
        // The group's alerts that count, this one included.
        let since = at_ms - i64::from(rule.window_secs) * 1000;
        // Ordered by when each began, by its source's clock.
        let mut members: Vec<(UnixMs, Fingerprint)> = vec![(began_ms, fp.clone())];
        if rule.threshold > 1 {
            for a in self.alerts.values() {
                let counts = match a.state {
                    AlertState::Firing | AlertState::Acknowledged => a.last_ms >= since,
                    AlertState::Resolved => {
                        !rule.firing_only && a.resolved_ms.is_some_and(|t| t >= since)
                    }
                    AlertState::Suppressed | AlertState::Maintenance => false,
                };
                let free = a
                    .incident
                    .as_deref()
                    .and_then(|id| self.incident(id))
                    .is_none_or(|i| !i.status.is_open());
                if a.fingerprint != fp
                    && counts
                    && free
                    && self.rules.iter().position(|ms| holds(ms, &a.labels)) == Some(r)
                    && group_of(&rule.group_by, &a.labels) == group
                {
                    members.push((a.first_ms, a.fingerprint.clone()));
                }
            }
        }
        if members.len() < rule.threshold as usize {
            return events;
        }
        members.sort();
        // The newest, this one among them; the others join on their next
        // report.
        let excess = members.len().saturating_sub(MAX_OPENING);
        members.drain(..excess);
        let name = match &events[0] {
            Event::AlertReceived { signal, .. } if !signal.name.is_empty() => signal.name.clone(),
            _ => prior.map(|a| a.name.clone()).unwrap_or_default(),
        };
        // The group's labels but the name, and those the alert lacks.
        let described: Vec<String> = group
            .iter()
            .filter(|(k, v)| *k != "alertname" && !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let title = if described.is_empty() {
            name
        } else {
            format!("{name} ({})", described.join(", "))
        };
        events.push(Event::IncidentOpened {
            id: format!("INC-{}", self.incidents.len() + 1),
            rule: rule.name.clone(),
            group,
            title,
            alerts: members.into_iter().map(|(_, f)| f).collect(),
        });
        events
    }

    /// Why `inc` resolves now that `fp` has, by its rule's `resolve_on`.
    fn resolves(&self, inc: &Incident, fp: &Fingerprint) -> Option<String> {
        let on = self
            .settings
            .rules
            .iter()
            .find(|r| r.name == inc.rule)
            .map_or(ResolveOn::All, |r| r.resolve_on);
        // First and last among the alerts still firing (this one counts as
        // firing until now), so one resolved before cannot hold it open.
        let active =
            |a: &&Fingerprint| *a == fp || self.alerts.get(*a).is_some_and(|x| x.state.is_active());
        let done = match on {
            ResolveOn::First => inc.alerts.iter().find(active) == Some(fp),
            ResolveOn::Last => inc.alerts.iter().rev().find(active) == Some(fp),
            ResolveOn::All => inc
                .alerts
                .iter()
                .all(|a| a == fp || self.alerts.get(a).is_none_or(|x| !x.state.is_active())),
            ResolveOn::Never => false,
        };
        let word: &'static str = on.into();
        done.then(|| format!("rule {} resolves on {word}: alert {fp} resolved", inc.rule))
    }
}

mod apply;
mod heal;
mod investigate;
mod postmortem;
pub use heal::{MAX_HEAL_NOTE, MAX_HEALS};
pub use investigate::MAX_INVESTIGATIONS;
#[cfg(test)]
mod tests;
