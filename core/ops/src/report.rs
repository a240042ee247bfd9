//! Report: a postmortem drafted from what was recorded, in the words of the
//! blameless postmortem (summary, impact, root causes, trigger, detection,
//! resolution, action items, lessons: what went well, what went wrong,
//! where we got lucky, and the timeline), with MTTA and MTTR from the
//! recorded times and what each investigation cost and took.
//!
//! The draft claims nothing the record does not hold: its root causes are
//! the newest diagnosis' (each with its evidence ids), its impact is
//! counted from the incident's alerts and the change events of its span.
//! A person edits the prose (never the timeline, the causes or the
//! figures), then publishes it; a published postmortem is not edited
//! again. Pure logic.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use specta::Type;

use oshal_kernel::clock::UnixMs;

use crate::alert::Alert;
use crate::change::{ChangeEvent, ChangeKind};
use crate::diagnose::Cause;
use crate::heal::{Heal, HealPhase};
use crate::incident::{Incident, IncidentStatus, Moment, TimelineEntry};
use crate::investigation::{Investigation, Phase};
use crate::rule::Invalid;

/// The longest prose field of a postmortem.
pub const MAX_PROSE_BYTES: usize = 8 * 1024;
/// The most items of a list (action items, each kind of lesson).
pub const MAX_ITEMS: usize = 50;
/// The longest item.
pub const MAX_ITEM_BYTES: usize = 1024;
/// The most one edit may hold, all fields together (it is one journal
/// entry).
pub const MAX_EDIT_BYTES: usize = 32 * 1024;
/// How long before an incident opened a requeue still counts as its
/// impact (a node is lost before its alert fires).
const REQUEUE_LEAD_MS: i64 = 60_000;
/// Label names whose values say what an incident touched.
const AFFECTED: &[&str] = &["node", "bot", "service", "instance", "tenant", "job"];

/// Whether a postmortem may still be edited.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PostmortemStatus {
    Draft,
    Published,
}

/// What the incident touched, counted from the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Impact {
    pub alerts: u32,
    /// Reports received, duplicates included.
    #[specta(type = specta_typescript::Number)]
    pub reports: u64,
    /// `node=n2`, `service=checkout`: the values of the alerts' labels
    /// that name a part of a system.
    pub affected: Vec<String>,
    /// Tickets requeued or re-driven during it.
    pub tickets_requeued: u32,
    /// From opened to resolved (`None` while open).
    #[specta(type = Option<specta_typescript::Number>)]
    pub duration_ms: Option<i64>,
    /// What its investigations' model calls cost, in nano-dollars.
    #[specta(type = specta_typescript::Number)]
    pub model_cost_nanos: i64,
}

/// One investigation's cost and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct StepCost {
    /// The Gather ticket.
    pub ticket: String,
    pub phase: Phase,
    /// Tool calls made.
    pub calls: u32,
    #[specta(type = specta_typescript::Number)]
    pub cost_nanos: i64,
    #[specta(type = Option<specta_typescript::Number>)]
    pub duration_ms: Option<i64>,
}

/// Lessons, as the blameless postmortem asks them. An edit's lessons
/// replace all three lists (a list left out is empty).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Lessons {
    #[serde(default)]
    pub went_well: Vec<String>,
    #[serde(default)]
    pub went_wrong: Vec<String>,
    #[serde(default)]
    pub got_lucky: Vec<String>,
}

/// A postmortem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Postmortem {
    pub incident: String,
    pub title: String,
    pub status: PostmortemStatus,
    pub summary: String,
    pub impact: Impact,
    /// The newest diagnosis' causes, most likely first, each with its
    /// claims and their evidence ids; empty when none was established.
    pub root_causes: Vec<Cause>,
    pub trigger: String,
    pub detection: String,
    pub resolution: String,
    pub action_items: Vec<String>,
    pub lessons: Lessons,
    pub timeline: Vec<TimelineEntry>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub mtta_ms: Option<i64>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub mttr_ms: Option<i64>,
    pub investigations: Vec<StepCost>,
    /// Who last edited it, and who published it when.
    pub edited_by: Option<String>,
    pub published_by: Option<String>,
    #[specta(type = Option<specta_typescript::Number>)]
    pub published_ms: Option<UnixMs>,
}

/// A person's edit of a draft: the prose fields given replace the draft's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostmortemEdit {
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub trigger: Option<String>,
    #[serde(default)]
    pub detection: Option<String>,
    #[serde(default)]
    pub resolution: Option<String>,
    #[serde(default)]
    pub action_items: Option<Vec<String>>,
    #[serde(default)]
    pub lessons: Option<Lessons>,
}

fn span(ms: i64) -> String {
    match ms {
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{:.1} min", ms as f64 / 60_000.0),
        ms => format!("{:.1} h", ms as f64 / 3_600_000.0),
    }
}

fn cause_line(c: &Cause) -> String {
    let evidence: BTreeSet<&str> = c
        .supports
        .iter()
        .flat_map(|s| s.evidence.iter().map(String::as_str))
        .collect();
    let evidence: Vec<&str> = evidence.into_iter().collect();
    format!(
        "{} {} (evidence {})",
        <&str>::from(c.kind).replace('_', " "),
        c.subject,
        evidence.join(", ")
    )
}

/// Who first moved the incident to `status` on its timeline, and the
/// line (`resolved: restarted n2`).
fn moved(inc: &Incident, status: &str) -> Option<(String, String)> {
    inc.timeline
        .iter()
        .filter(|t| t.moment == Moment::StatusChanged)
        .find(|t| t.detail.starts_with(status))
        .map(|t| (t.subject.clone(), t.detail.clone()))
}

/// A heal in a sentence: what, who decided, what it answered, its re-check.
fn heal_line(h: &Heal) -> String {
    let phase: &'static str = h.phase.into();
    let mut line = format!("heal {} ({}) {phase}", h.id, h.dry_run.summary);
    if let Some(by) = &h.decided_by {
        line += &format!(", decided by {by}");
    }
    if let Some(o) = &h.outcome {
        line += &format!(": {o}");
    }
    if let Some(r) = &h.recheck {
        line += &format!("; re-check: {}", r.detail);
    }
    line
}

/// The draft the record supports.
pub fn draft(
    inc: &Incident,
    alerts: &[&Alert],
    investigations: &[Investigation],
    changes: &[ChangeEvent],
    heals: &[Heal],
) -> Postmortem {
    // The cause is the newest diagnosis that is not a heal's re-check
    // (a re-check that passed finds the cause gone).
    let recheck = |i: &Investigation| {
        heals
            .iter()
            .any(|h| h.recheck.as_ref().is_some_and(|r| r.ticket == i.ticket))
    };
    let diagnosed = investigations
        .iter()
        .rev()
        .filter(|i| !recheck(i))
        .find_map(|i| i.diagnosis.as_ref().map(|d| (i, d)));
    let root_causes: Vec<Cause> = match diagnosed {
        Some((_, d)) if !d.inconclusive => d.causes.clone(),
        _ => Vec::new(),
    };
    let end = inc.resolved_ms.unwrap_or(i64::MAX);
    let tickets_requeued = changes
        .iter()
        .filter(|c| matches!(c.kind, ChangeKind::TicketsRequeued | ChangeKind::LanesReset))
        .filter(|c| c.at_ms >= inc.opened_ms - REQUEUE_LEAD_MS && c.at_ms <= end)
        .map(|c| c.count)
        .sum();
    let mut affected = BTreeSet::new();
    for a in alerts {
        for (k, v) in &a.labels {
            if AFFECTED.contains(&k.as_str()) {
                affected.insert(format!("{k}={v}"));
            }
        }
    }
    let model_cost_nanos = investigations.iter().map(|i| i.cost_nanos).sum();
    let impact = Impact {
        alerts: alerts.len() as u32,
        reports: alerts.iter().map(|a| a.count).sum(),
        affected: affected.into_iter().collect(),
        tickets_requeued,
        duration_ms: inc.mttr_ms(),
        model_cost_nanos,
    };
    let first = alerts.first();
    let trigger = match first {
        Some(a) => format!("{} ({}): {}", a.name, <&str>::from(a.source), a.summary),
        None => inc.title.clone(),
    };
    let mut detection = match first {
        Some(a) => format!(
            "{} raised {} at {} ms",
            <&str>::from(a.source),
            a.name,
            a.first_ms
        ),
        None => format!("opened at {} ms", inc.opened_ms),
    };
    match (inc.mtta_ms(), moved(inc, "acknowledged")) {
        (Some(ms), Some((who, _))) => {
            detection += &format!("; acknowledged by {who} after {}", span(ms))
        }
        (Some(ms), None) => detection += &format!("; acknowledged after {}", span(ms)),
        (None, _) => detection += "; not acknowledged",
    }
    let mut resolution = match (inc.status, moved(inc, "resolve")) {
        (IncidentStatus::Resolved, Some((who, line))) => format!("{line} (by {who})"),
        (IncidentStatus::Resolved, None) => "resolved".to_owned(),
        (status, _) => format!("not resolved yet ({})", <&str>::from(status)),
    };
    for h in heals.iter().filter(|h| h.phase != HealPhase::Pending) {
        resolution += &format!("; {}", heal_line(h));
    }
    let top = root_causes.first().map(cause_line);
    let summary = format!(
        "{}: {} alert{} over {}; {}.",
        inc.title,
        impact.alerts,
        if impact.alerts == 1 { "" } else { "s" },
        inc.mttr_ms()
            .map_or_else(|| "an incident still open".to_owned(), span),
        match &top {
            Some(t) => format!("most likely cause: {t}"),
            None => "no root cause was established from the evidence".to_owned(),
        }
    );
    let mut action_items: Vec<String> = match diagnosed {
        Some((_, d)) => d.next_steps.clone(),
        None => Vec::new(),
    };
    let mut lessons = Lessons::default();
    if let Some(a) = first {
        lessons.went_well.push(format!(
            "detected by {} without a person watching",
            <&str>::from(a.source)
        ));
    }
    match diagnosed {
        Some((i, d)) if !d.inconclusive => lessons.went_well.push(format!(
            "diagnosed from {} tool calls kept as evidence{}",
            i.evidence.len(),
            i.finished_ms
                .map_or_else(String::new, |f| format!(" in {}", span(f - i.started_ms)))
        )),
        Some(_) => {
            lessons
                .went_wrong
                .push("the evidence gathered established no cause".to_owned());
            action_items.push("add a runbook step that would have shown the cause".to_owned());
        }
        None => {}
    }
    for i in investigations.iter().filter(|i| i.phase == Phase::Failed) {
        lessons.went_wrong.push(format!(
            "investigation {} failed: {}",
            i.ticket,
            i.error.as_deref().unwrap_or("no reason recorded")
        ));
    }
    for h in heals {
        match (h.phase, h.recheck.as_ref().and_then(|r| r.passed)) {
            (HealPhase::Succeeded, Some(true)) => lessons.went_well.push(format!(
                "healed by {} ({}) after {}'s approval, and the re-check found the cause gone",
                h.id,
                h.action.operation(),
                h.decided_by.as_deref().unwrap_or("someone")
            )),
            (HealPhase::Succeeded, Some(false)) => {
                lessons.went_wrong.push(format!(
                    "heal {} did not hold: the re-check still found the cause",
                    h.id
                ));
                action_items.push(format!(
                    "revisit heal rule {}: its action did not clear the cause",
                    h.rule
                ));
            }
            (HealPhase::Failed, _) => lessons.went_wrong.push(format!(
                "heal {} failed: {}",
                h.id,
                h.outcome.as_deref().unwrap_or("no reason recorded")
            )),
            _ => {}
        }
    }
    if inc.mtta_ms().is_some_and(|ms| ms > 300_000) {
        lessons
            .went_wrong
            .push("acknowledged more than 5 minutes after it opened".to_owned());
    }
    Postmortem {
        incident: inc.id.clone(),
        title: format!("Postmortem: {}", inc.title),
        status: PostmortemStatus::Draft,
        summary,
        impact,
        root_causes,
        trigger,
        detection,
        resolution,
        action_items,
        lessons,
        timeline: inc.timeline.clone(),
        mtta_ms: inc.mtta_ms(),
        mttr_ms: inc.mttr_ms(),
        investigations: investigations
            .iter()
            .map(|i| StepCost {
                ticket: i.ticket.clone(),
                phase: i.phase,
                calls: i.evidence.len() as u32,
                cost_nanos: i.cost_nanos,
                duration_ms: i.finished_ms.map(|f| f - i.started_ms),
            })
            .collect(),
        edited_by: None,
        published_by: None,
        published_ms: None,
    }
}

fn prose(path: &str, s: &str) -> Result<(), Invalid> {
    if s.len() > MAX_PROSE_BYTES || s.contains('\0') {
        return Err(Invalid {
            path: path.into(),
            reason: format!("must be at most {MAX_PROSE_BYTES} bytes, without NUL"),
            limit: Some(MAX_PROSE_BYTES as u64),
        });
    }
    Ok(())
}

fn items(path: &str, v: &[String]) -> Result<(), Invalid> {
    if v.len() > MAX_ITEMS {
        return Err(Invalid {
            path: path.into(),
            reason: format!("holds {}; the limit is {MAX_ITEMS}", v.len()),
            limit: Some(MAX_ITEMS as u64),
        });
    }
    for (i, s) in v.iter().enumerate() {
        if s.trim().is_empty() || s.len() > MAX_ITEM_BYTES || s.contains('\0') {
            return Err(Invalid {
                path: format!("{path}[{i}]"),
                reason: format!("must be 1 to {MAX_ITEM_BYTES} bytes, without NUL"),
                limit: Some(MAX_ITEM_BYTES as u64),
            });
        }
    }
    Ok(())
}

impl PostmortemEdit {
    /// Every refusal at its JSON path.
    pub fn check(&self) -> Result<(), Invalid> {
        let bytes = serde_json::to_vec(self).map_or(usize::MAX, |b| b.len());
        if bytes > MAX_EDIT_BYTES {
            return Err(Invalid {
                path: "edit".into(),
                reason: format!("{bytes} bytes in all; the limit is {MAX_EDIT_BYTES}"),
                limit: Some(MAX_EDIT_BYTES as u64),
            });
        }
        for (path, s) in [
            ("summary", &self.summary),
            ("trigger", &self.trigger),
            ("detection", &self.detection),
            ("resolution", &self.resolution),
        ] {
            if let Some(s) = s {
                prose(path, s)?;
            }
        }
        if let Some(a) = &self.action_items {
            items("action_items", a)?;
        }
        if let Some(l) = &self.lessons {
            items("lessons.went_well", &l.went_well)?;
            items("lessons.went_wrong", &l.went_wrong)?;
            items("lessons.got_lucky", &l.got_lucky)?;
        }
        Ok(())
    }
}

impl Postmortem {
    /// The edit applied (checked first).
    pub fn edited(mut self, e: &PostmortemEdit, by: &str) -> Self {
        let set = |field: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                field.clone_from(v);
            }
        };
        set(&mut self.summary, &e.summary);
        set(&mut self.trigger, &e.trigger);
        set(&mut self.detection, &e.detection);
        set(&mut self.resolution, &e.resolution);
        if let Some(a) = &e.action_items {
            self.action_items.clone_from(a);
        }
        if let Some(l) = &e.lessons {
            self.lessons = l.clone();
        }
        self.edited_by = Some(by.to_owned());
        self
    }
}

#[cfg(test)]
mod tests;
