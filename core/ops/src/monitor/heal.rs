//! An incident's heals in the monitor: proposed from an investigation's
//! diagnosis by a heal rule (once per rule and incident), approved or
//! denied by a person, started when its ticket is submitted, finished when
//! the ticket ends, and re-checked by an investigation run again after it
//! succeeded; a re-check that finds the cause gone mitigates the incident.
//! `decide_*` decide; `apply_*` fold.

use oshal_kernel::clock::UnixMs;

use super::{Event, MONITOR, Monitor, OpsError};
use crate::heal::{Action, DryRun, Heal, HealPhase, Recheck, candidates, cleared};
use crate::incident::{IncidentAction, Moment};
use crate::investigation::Phase;
use crate::rule::Invalid;

/// Heals one incident keeps.
pub const MAX_HEALS: usize = 16;
/// Bytes of an approver's note.
pub const MAX_HEAL_NOTE: usize = 1024;

fn refused(id: &str, reason: String) -> OpsError {
    OpsError::Heal {
        id: id.to_owned(),
        reason,
    }
}

impl Monitor {
    /// An incident's heals, oldest first.
    pub fn heals(&self, incident: &str) -> &[Heal] {
        self.heals.get(incident).map_or(&[][..], Vec::as_slice)
    }

    /// The heal whose ticket is `ticket`, with its incident.
    pub fn heal_of(&self, ticket: &str) -> Option<(&str, &Heal)> {
        self.heals.iter().find_map(|(inc, v)| {
            v.iter()
                .find(|h| h.ticket.as_deref() == Some(ticket))
                .map(|h| (inc.as_str(), h))
        })
    }

    /// Every heal approved and not yet ended, with its incident.
    pub fn active_heals(&self) -> impl Iterator<Item = (&str, &Heal)> {
        self.heals.iter().flat_map(|(inc, v)| {
            v.iter()
                .filter(|h| h.phase.is_active())
                .map(move |h| (inc.as_str(), h))
        })
    }

    fn heal(&self, incident: &str, heal: &str) -> Result<&Heal, OpsError> {
        self.heals(incident)
            .iter()
            .find(|h| h.id == heal)
            .ok_or_else(|| OpsError::NotFound {
                what: "heal",
                id: format!("{incident}/{heal}"),
            })
    }

    pub(super) fn decide_propose(
        &self,
        incident: String,
        investigation: &str,
        rule: &str,
        action: Action,
        dry_run: DryRun,
        at_ms: UnixMs,
    ) -> Result<Vec<Event>, OpsError> {
        let inc = self.incident(&incident).ok_or_else(|| OpsError::NotFound {
            what: "incident",
            id: incident.clone(),
        })?;
        let heals = self.heals(&incident);
        if heals.iter().any(|h| h.rule == rule) {
            // Once per incident: a proposal made again (after a restart)
            // changes nothing.
            return Ok(Vec::new());
        }
        if !inc.status.is_open() {
            return Err(refused(
                &incident,
                "is resolved; a resolved incident is not healed".into(),
            ));
        }
        let r = self
            .settings
            .heal
            .iter()
            .find(|r| r.name == rule)
            .ok_or_else(|| OpsError::NotFound {
                what: "heal rule",
                id: rule.to_owned(),
            })?;
        let inv = self
            .investigations(&incident)
            .iter()
            .find(|i| i.ticket == investigation && i.phase == Phase::Succeeded)
            .ok_or_else(|| OpsError::NotFound {
                what: "succeeded investigation",
                id: investigation.to_owned(),
            })?;
        let diagnosis = inv.diagnosis.as_ref().ok_or_else(|| OpsError::NotFound {
            what: "diagnosis of investigation",
            id: investigation.to_owned(),
        })?;
        let first = inc.alerts.first().and_then(|fp| self.alert(fp));
        let labels = first.map(|a| a.labels.clone()).unwrap_or_default();
        if candidates(
            std::slice::from_ref(r),
            diagnosis,
            &labels,
            heals,
            &self.capped,
        )
        .is_empty()
        {
            return Err(refused(
                &incident,
                format!("rule {rule} does not heal the diagnosis of {investigation}"),
            ));
        }
        if !action.follows(&r.action) {
            return Err(OpsError::Invalid(Invalid {
                path: "action".into(),
                reason: format!("is not what rule {rule}'s action makes"),
                limit: None,
            }));
        }
        dry_run.check().map_err(|reason| {
            OpsError::Invalid(Invalid {
                path: "dry_run".into(),
                reason,
                limit: Some(crate::heal::MAX_DRY_RUN_BYTES as u64),
            })
        })?;
        if heals.len() >= MAX_HEALS {
            return Err(OpsError::Invalid(Invalid {
                path: "incident".into(),
                reason: format!("an incident keeps at most {MAX_HEALS} heals"),
                limit: Some(MAX_HEALS as u64),
            }));
        }
        let top = &diagnosis.causes[0];
        let mut evidence: Vec<String> = top
            .supports
            .iter()
            .flat_map(|c| c.evidence.iter().cloned())
            .collect();
        evidence.sort();
        evidence.dedup();
        let heal = Heal {
            id: format!("H-{}", heals.len() + 1),
            rule: rule.to_owned(),
            alert: first.map(|a| a.fingerprint.0.clone()).unwrap_or_default(),
            investigation: investigation.to_owned(),
            cause: top.kind,
            subject: top.subject.clone(),
            evidence,
            action,
            dry_run,
            max_attempts: r.max_attempts,
            phase: HealPhase::Pending,
            proposed_ms: at_ms,
            decided_by: None,
            decided_ms: None,
            note: String::new(),
            ticket: None,
            outcome: None,
            finished_ms: None,
            recheck: None,
        };
        Ok(vec![Event::HealProposed {
            incident,
            heal: Box::new(heal),
        }])
    }

    pub(super) fn decide_decide(
        &self,
        incident: String,
        heal: String,
        approve: bool,
        by: String,
        note: String,
    ) -> Result<Vec<Event>, OpsError> {
        let h = self.heal(&incident, &heal)?;
        if note.len() > MAX_HEAL_NOTE || note.contains('\0') {
            return Err(OpsError::Invalid(Invalid {
                path: "note".into(),
                reason: format!("must be at most {MAX_HEAL_NOTE} bytes, without NUL"),
                limit: Some(MAX_HEAL_NOTE as u64),
            }));
        }
        if h.phase != HealPhase::Pending {
            let phase: &'static str = h.phase.into();
            return Err(refused(
                &format!("{incident}/{heal}"),
                format!("is {phase}; only a pending heal is approved or denied"),
            ));
        }
        if approve && !self.incident(&incident).is_some_and(|i| i.status.is_open()) {
            return Err(refused(
                &format!("{incident}/{heal}"),
                "belongs to a resolved incident; what it would change was worked out for a cause that is gone".into(),
            ));
        }
        if let Action::SetBudget { tenant, .. } = &h.action
            && approve
            && self.capped.contains(tenant)
        {
            return Err(refused(
                &format!("{incident}/{heal}"),
                format!(
                    "would raise tenant {tenant}'s budget, which a heal capped since it was proposed; a person sets it again first"
                ),
            ));
        }
        if approve {
            let limit = self
                .settings
                .heal
                .iter()
                .find(|r| r.name == h.rule)
                .map_or(1, |r| r.concurrency);
            let running = self
                .active_heals()
                .filter(|(_, a)| a.rule == h.rule)
                .count();
            if running >= limit as usize {
                return Err(refused(
                    &format!("{incident}/{heal}"),
                    format!(
                        "waits: rule {} already has {running} heals under way (its concurrency is {limit}); approve it once they end",
                        h.rule
                    ),
                ));
            }
        }
        Ok(vec![Event::HealDecided {
            incident,
            heal,
            approved: approve,
            by,
            note,
        }])
    }

    pub(super) fn decide_start_heal(
        &self,
        incident: String,
        heal: String,
        ticket: String,
    ) -> Result<Vec<Event>, OpsError> {
        let h = self.heal(&incident, &heal)?;
        match h.phase {
            HealPhase::Scheduled => Ok(vec![Event::HealStarted {
                incident,
                heal,
                ticket,
            }]),
            HealPhase::Running if h.ticket.as_deref() == Some(ticket.as_str()) => Ok(Vec::new()),
            other => {
                let phase: &'static str = other.into();
                Err(refused(
                    &format!("{incident}/{heal}"),
                    format!("is {phase}; only an approved heal starts"),
                ))
            }
        }
    }

    pub(super) fn decide_finish_heal(
        &self,
        ticket: &str,
        outcome: Result<String, String>,
    ) -> Result<Vec<Event>, OpsError> {
        let (incident, h) = self.heal_of(ticket).ok_or_else(|| OpsError::NotFound {
            what: "heal of ticket",
            id: ticket.to_owned(),
        })?;
        if h.phase != HealPhase::Running {
            // Its end delivered twice.
            return Ok(Vec::new());
        }
        let (succeeded, outcome) = match outcome {
            Ok(s) => (true, s),
            Err(e) => (false, e),
        };
        Ok(vec![Event::HealFinished {
            incident: incident.to_owned(),
            heal: h.id.clone(),
            succeeded,
            outcome: oshal_kernel::text::clip(&outcome, MAX_HEAL_NOTE * 4).to_owned(),
        }])
    }

    /// A scheduled heal (approved, its ticket not released) given up:
    /// failed with why. A heal past that is let be (its ticket's end
    /// decides it).
    pub(super) fn decide_abandon(
        &self,
        incident: String,
        heal: String,
        why: &str,
    ) -> Result<Vec<Event>, OpsError> {
        let h = self.heal(&incident, &heal)?;
        if h.phase != HealPhase::Scheduled {
            return Ok(Vec::new());
        }
        Ok(vec![Event::HealFinished {
            incident,
            heal,
            succeeded: false,
            outcome: oshal_kernel::text::clip(why, MAX_HEAL_NOTE * 4).to_owned(),
        }])
    }

    /// The pending heals of an incident that resolves, denied by the
    /// monitor: what they would change was worked out for a cause that
    /// is gone, so they can no longer be approved.
    pub(super) fn expire_pending(&self, incident: &str) -> Vec<Event> {
        self.heals(incident)
            .iter()
            .filter(|h| h.phase == HealPhase::Pending)
            .map(|h| Event::HealDecided {
                incident: incident.to_owned(),
                heal: h.id.clone(),
                approved: false,
                by: MONITOR.into(),
                note: "the incident resolved before it was approved".into(),
            })
            .collect()
    }

    /// Whether a re-check of `heal` may start on `incident`.
    pub(super) fn may_recheck(&self, incident: &str, heal: &str) -> Result<(), OpsError> {
        let h = self.heal(incident, heal)?;
        if h.phase != HealPhase::Succeeded || h.recheck.is_some() {
            return Err(refused(
                &format!("{incident}/{heal}"),
                "is re-checked once, after it succeeded".into(),
            ));
        }
        Ok(())
    }

    /// The events a re-check's end leads to: its verdict and, if the
    /// cause is gone, the incident mitigated.
    pub(super) fn rechecked(
        &self,
        incident: &str,
        heal: &str,
        verdict: Result<&crate::diagnose::Diagnosis, &str>,
    ) -> Vec<Event> {
        let Ok(h) = self.heal(incident, heal) else {
            return Vec::new();
        };
        let (passed, detail) = match verdict {
            Ok(d) => cleared(h, d),
            Err(e) => (false, format!("the re-check failed: {e}")),
        };
        let mut events = vec![Event::HealRechecked {
            incident: incident.to_owned(),
            heal: heal.to_owned(),
            passed,
            detail: detail.clone(),
        }];
        let status = self.incident(incident).map(|i| i.status);
        if passed
            && status.is_some_and(|s| {
                s.after(IncidentAction::Mitigate)
                    .is_some_and(|to| to != s && s.is_open())
            })
        {
            events.push(Event::IncidentMoved {
                id: incident.to_owned(),
                action: IncidentAction::Mitigate,
                by: MONITOR.into(),
                note: format!("heal {heal} re-checked: {detail}"),
            });
        }
        events
    }

    pub(super) fn apply_proposed(&mut self, incident: &str, heal: &Heal, at_ms: UnixMs) {
        let v = self.heals.entry(incident.to_owned()).or_default();
        v.push(heal.clone());
        let detail = format!("{} (rule {}): {}", heal.id, heal.rule, heal.dry_run.summary);
        self.note(
            Some(incident),
            at_ms,
            Moment::HealProposed,
            &heal.id,
            &detail,
        );
    }

    fn heal_mut(&mut self, incident: &str, heal: &str) -> Option<&mut Heal> {
        self.heals
            .get_mut(incident)?
            .iter_mut()
            .find(|h| h.id == heal)
    }

    pub(super) fn apply_decided(
        &mut self,
        (incident, heal): (&str, &str),
        approved: bool,
        by: &str,
        note: &str,
        at_ms: UnixMs,
    ) {
        let Some(h) = self.heal_mut(incident, heal) else {
            return;
        };
        h.phase = if approved {
            HealPhase::Scheduled
        } else {
            HealPhase::Denied
        };
        h.decided_by = Some(by.to_owned());
        h.decided_ms = Some(at_ms);
        h.note = note.to_owned();
        let (moment, word) = if approved {
            (Moment::HealApproved, "approved")
        } else {
            (Moment::HealDenied, "denied")
        };
        let detail = if note.is_empty() {
            format!("{heal} {word}")
        } else {
            format!("{heal} {word}: {note}")
        };
        self.note(Some(incident), at_ms, moment, by, &detail);
    }

    pub(super) fn apply_heal_started(
        &mut self,
        incident: &str,
        heal: &str,
        ticket: &str,
        at_ms: UnixMs,
    ) {
        let Some(h) = self.heal_mut(incident, heal) else {
            return;
        };
        h.phase = HealPhase::Running;
        h.ticket = Some(ticket.to_owned());
        let detail = format!(
            "{heal}: {} under one expiring write grant",
            h.action.operation()
        );
        self.note(Some(incident), at_ms, Moment::Healing, ticket, &detail);
    }

    pub(super) fn apply_heal_finished(
        &mut self,
        (incident, heal): (&str, &str),
        succeeded: bool,
        outcome: &str,
        at_ms: UnixMs,
    ) {
        let Some(h) = self.heal_mut(incident, heal) else {
            return;
        };
        h.phase = if succeeded {
            HealPhase::Succeeded
        } else {
            HealPhase::Failed
        };
        h.outcome = Some(outcome.to_owned());
        h.finished_ms = Some(at_ms);
        let moment = if succeeded {
            Moment::Healed
        } else {
            Moment::HealFailed
        };
        self.note(
            Some(incident),
            at_ms,
            moment,
            heal,
            &format!("{heal}: {outcome}"),
        );
    }

    /// A re-check started: its ticket on the heal.
    pub(super) fn apply_recheck_started(&mut self, incident: &str, heal: &str, ticket: &str) {
        if let Some(h) = self.heal_mut(incident, heal) {
            h.recheck = Some(Recheck {
                ticket: ticket.to_owned(),
                passed: None,
                detail: "running".into(),
            });
        }
    }

    pub(super) fn apply_rechecked(
        &mut self,
        (incident, heal): (&str, &str),
        passed: bool,
        detail: &str,
        at_ms: UnixMs,
    ) {
        let Some(h) = self.heal_mut(incident, heal) else {
            return;
        };
        if let Some(r) = &mut h.recheck {
            r.passed = Some(passed);
            r.detail = detail.to_owned();
        }
        let word = if passed { "passed" } else { "failed" };
        self.note(
            Some(incident),
            at_ms,
            Moment::Rechecked,
            heal,
            &format!("{heal} re-check {word}: {detail}"),
        );
    }
}
