//! An incident's investigations in the monitor: started when a Gather
//! ticket is submitted for it, finished when the ticket's findings pass
//! [`Investigation::check`] (the diagnosis is then computed here, from
//! the evidence, and recorded with them), failed when the ticket fails or its findings are not to
//! be trusted. Every tool call and the diagnosis join the incident's
//! timeline. `decide_*` decide; `apply_*` fold.

use oshal_kernel::clock::UnixMs;

use super::{Event, Monitor, OpsError};
use crate::diagnose::Diagnosis;
use crate::evidence::Bounds;
use crate::incident::Moment;
use crate::investigation::{Findings, Investigation, Phase};
use crate::runbook::Plan;

/// Investigations one incident keeps (the oldest finished go first).
pub const MAX_INVESTIGATIONS: usize = 16;

impl Monitor {
    /// An incident's investigations, oldest first.
    pub fn investigations(&self, incident: &str) -> &[Investigation] {
        self.investigations
            .get(incident)
            .map_or(&[][..], Vec::as_slice)
    }

    /// The running investigation of `ticket`, with its incident.
    pub fn investigation_of(&self, ticket: &str) -> Option<(&str, &Investigation)> {
        self.investigations.iter().find_map(|(inc, v)| {
            v.iter()
                .find(|i| i.ticket == ticket)
                .map(|i| (inc.as_str(), i))
        })
    }

    /// The investigation of `ticket` if it still runs; `None` once it
    /// ended (news of it delivered twice changes nothing).
    fn still_running(&self, ticket: &str) -> Result<Option<(&str, &Investigation)>, OpsError> {
        match self.investigation_of(ticket) {
            None => Err(OpsError::NotFound {
                what: "investigation of ticket",
                id: ticket.to_owned(),
            }),
            Some((_, inv)) if inv.phase != Phase::Running => Ok(None),
            found => Ok(found),
        }
    }

    pub(super) fn decide_start(
        &self,
        incident: String,
        ticket: String,
        alert: String,
        plan: Plan,
        bounds: Bounds,
        recheck_of: Option<String>,
    ) -> Result<Vec<Event>, OpsError> {
        if self.incident(&incident).is_none() {
            return Err(OpsError::NotFound {
                what: "incident",
                id: incident,
            });
        }
        if self.investigation_of(&ticket).is_some() {
            return Ok(Vec::new());
        }
        if let Some(heal) = &recheck_of {
            self.may_recheck(&incident, heal)?;
        }
        Ok(vec![Event::InvestigationStarted {
            incident,
            ticket,
            alert,
            plan,
            bounds,
            recheck_of,
        }])
    }

    /// Findings of `ticket`: taken if they can be trusted, else the
    /// investigation fails saying why. Findings of an investigation no
    /// longer running change nothing (a result delivered twice).
    pub(super) fn decide_finish(
        &self,
        ticket: &str,
        findings: Findings,
        cost_nanos: i64,
    ) -> Result<Vec<Event>, OpsError> {
        let Some((incident, inv)) = self.still_running(ticket)? else {
            return Ok(Vec::new());
        };
        let incident = incident.to_owned();
        let recheck = self.recheck_of(ticket);
        Ok(match inv.check(&findings) {
            Ok(()) => {
                let diagnosis = inv.diagnosis_of(&findings);
                let verdict = recheck
                    .map(|heal| self.rechecked(&incident, heal, Ok(&diagnosis)))
                    .unwrap_or_default();
                let mut events = vec![Event::InvestigationSucceeded {
                    incident,
                    ticket: ticket.to_owned(),
                    diagnosis,
                    findings,
                    cost_nanos,
                }];
                events.extend(verdict);
                events
            }
            Err(why) => {
                let error = format!("findings refused: {why}");
                self.failed(incident, ticket, error)
            }
        })
    }

    /// The heal the investigation of `ticket` re-checks.
    fn recheck_of(&self, ticket: &str) -> Option<&str> {
        self.heals.values().flatten().find_map(|h| {
            h.recheck
                .as_ref()
                .filter(|r| r.ticket == ticket)
                .map(|_| h.id.as_str())
        })
    }

    /// An investigation failed, and the heal it re-checked with it.
    fn failed(&self, incident: String, ticket: &str, error: String) -> Vec<Event> {
        let verdict = self
            .recheck_of(ticket)
            .map(|heal| self.rechecked(&incident, heal, Err(&error)))
            .unwrap_or_default();
        let mut events = vec![Event::InvestigationFailed {
            incident,
            ticket: ticket.to_owned(),
            error,
        }];
        events.extend(verdict);
        events
    }

    pub(super) fn decide_fail(&self, ticket: &str, error: String) -> Result<Vec<Event>, OpsError> {
        let Some((incident, _)) = self.still_running(ticket)? else {
            return Ok(Vec::new());
        };
        Ok(self.failed(incident.to_owned(), ticket, error))
    }

    pub(super) fn apply_start(
        &mut self,
        incident: &str,
        ticket: &str,
        alert: &str,
        plan: &Plan,
        bounds: Bounds,
        at_ms: UnixMs,
    ) {
        let tasks = plan.tasks.len();
        let v = self.investigations.entry(incident.to_owned()).or_default();
        v.push(Investigation::start(
            ticket.to_owned(),
            alert.to_owned(),
            plan.clone(),
            bounds,
            at_ms,
        ));
        if v.len() > MAX_INVESTIGATIONS
            && let Some(i) = v.iter().position(|i| i.phase != Phase::Running)
        {
            v.remove(i);
        }
        self.note(
            Some(incident),
            at_ms,
            Moment::Investigating,
            ticket,
            &format!("{alert}: a Gather ticket with {tasks} read-only tasks"),
        );
    }

    pub(super) fn apply_succeeded(
        &mut self,
        incident: &str,
        ticket: &str,
        findings: &Findings,
        diagnosis: &Diagnosis,
        cost_nanos: i64,
        at_ms: UnixMs,
    ) {
        let Some(inv) = self.running(incident, ticket) else {
            return;
        };
        let diagnosis = diagnosis.clone();
        inv.plan = inv.plan_after(findings);
        inv.phase = Phase::Succeeded;
        inv.evidence = findings.evidence.clone();
        inv.narrative = findings.narrative.clone();
        inv.stopped = findings.stopped.clone();
        inv.cost_nanos = cost_nanos;
        inv.finished_ms = Some(at_ms);
        let top = match (diagnosis.inconclusive, diagnosis.causes.first()) {
            (false, Some(c)) => format!("{}: {}", <&str>::from(c.kind), c.subject),
            _ => "inconclusive".to_owned(),
        };
        inv.diagnosis = Some(diagnosis);
        let calls: Vec<(String, String)> = findings
            .evidence
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    format!("{} {}", e.tool, <&str>::from(e.status)),
                )
            })
            .collect();
        for (id, detail) in calls {
            self.note(Some(incident), at_ms, Moment::ToolCall, &id, &detail);
        }
        self.note(Some(incident), at_ms, Moment::Diagnosed, ticket, &top);
    }

    pub(super) fn apply_failed(
        &mut self,
        incident: &str,
        ticket: &str,
        error: &str,
        at_ms: UnixMs,
    ) {
        let Some(inv) = self.running(incident, ticket) else {
            return;
        };
        inv.phase = Phase::Failed;
        inv.error = Some(error.to_owned());
        inv.finished_ms = Some(at_ms);
        self.note(
            Some(incident),
            at_ms,
            Moment::InvestigationFailed,
            ticket,
            error,
        );
    }

    fn running(&mut self, incident: &str, ticket: &str) -> Option<&mut Investigation> {
        self.investigations
            .get_mut(incident)?
            .iter_mut()
            .find(|i| i.ticket == ticket && i.phase == Phase::Running)
    }
}
