//! Eval: how well the loop found what was done to the platform.
//!
//! A catalogue names each fault injected into a real fleet (what was
//! done, when, the alert it must raise, the cause and subject a diagnosis
//! must rank first, and whether a heal applies). [`score`] finds the
//! incident each fault opened, and reads from the record: where the
//! injected cause ranks (top-1, top-3), the share of the diagnosis'
//! claims whose evidence ids are all kept and intact, the steps (tool
//! calls) it took, what its investigations cost, the time from the
//! injection to the diagnosis, and for a heal whether it was approved
//! before it wrote and whether its re-check passed. [`Totals`] sums them
//! up, and holds every write the effect ledger shows to the platform's
//! own state against the approved heals. Pure logic: the adapter (`oshal
//! ops eval`) reads the record.

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Labels};
use crate::diagnose::{CauseKind, Diagnosis};
use crate::heal::{Heal, HealPhase};
use crate::incident::Incident;
use crate::investigation::{Investigation, Phase};

/// How long before its injection an incident may have opened and still
/// be the fault's (clocks and polls differ by seconds).
pub const SLACK_MS: i64 = 5_000;

/// One fault as it was injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Injected {
    /// What was done (`kill -9 node n2`).
    pub fault: String,
    /// The alert it must raise, and labels it must carry.
    pub alert: String,
    #[serde(default)]
    pub labels: Labels,
    /// The cause a diagnosis must rank first, and what it is about.
    pub cause: CauseKind,
    pub subject: String,
    /// Whether a heal rule applies to it.
    #[serde(default)]
    pub heal: bool,
    /// When it was injected (unix ms).
    pub injected_ms: i64,
}

/// One incident as the record holds it.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    pub incident: &'a Incident,
    pub alerts: &'a [Alert],
    pub investigations: &'a [Investigation],
    pub heals: &'a [Heal],
}

/// What the loop made of one fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub fault: String,
    /// The incident it opened; `None`: none was found.
    pub incident: Option<String>,
    /// The injected cause's place among the causes (1 = first).
    pub rank: Option<u32>,
    pub top1: bool,
    pub top3: bool,
    /// The diagnosis' claims, and those whose evidence is all kept intact.
    pub claims: u32,
    pub backed: u32,
    /// Tool calls of the diagnosing investigation.
    pub steps: u32,
    /// What the incident's investigations' model calls cost.
    pub cost_nanos: i64,
    /// From the injection to the diagnosis.
    pub to_diagnosis_ms: Option<i64>,
    /// For a fault a heal applies to: whether a heal succeeded and its
    /// re-check passed.
    pub healed: Option<bool>,
    /// Heals that ran without a person's approval (must be none).
    pub unapproved_writes: u32,
}

/// Every fault summed up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub faults: u32,
    pub top1: f64,
    pub top3: f64,
    /// Claims backed, over all claims.
    pub backed: f64,
    pub mean_steps: f64,
    pub mean_cost_nanos: f64,
    pub median_to_diagnosis_ms: Option<i64>,
    pub healed: u32,
    pub heals_expected: u32,
    /// Writes to the platform's own state the effect ledger holds.
    pub writes: u32,
    /// Heals run without a decision, and writes of tickets that are no
    /// approved heal's (both must be none).
    pub unapproved_writes: u32,
}

/// The report `oshal ops eval` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub faults: Vec<Scored>,
    pub totals: Totals,
}

/// Whether `r` is the incident `f` opened: it holds the fault's alert
/// with its labels and opened after the injection.
fn opened_by(f: &Injected, r: &Record<'_>) -> bool {
    r.incident.opened_ms >= f.injected_ms - SLACK_MS
        && r.alerts.iter().any(|a| {
            a.name == f.alert
                && f.labels
                    .iter()
                    .all(|(k, v)| a.labels.get(k).is_some_and(|x| x == v))
        })
}

/// The diagnosing investigation: the first that succeeded and is no
/// heal's re-check.
fn diagnosing<'a>(r: &Record<'a>) -> Option<(&'a Investigation, &'a Diagnosis)> {
    r.investigations
        .iter()
        .filter(|i| i.phase == Phase::Succeeded)
        .filter(|i| {
            !r.heals
                .iter()
                .any(|h| h.recheck.as_ref().is_some_and(|c| c.ticket == i.ticket))
        })
        .find_map(|i| i.diagnosis.as_ref().map(|d| (i, d)))
}

/// Scores one fault against the record.
pub fn score_one(f: &Injected, records: &[Record<'_>]) -> Scored {
    let mut s = Scored {
        fault: f.fault.clone(),
        incident: None,
        rank: None,
        top1: false,
        top3: false,
        claims: 0,
        backed: 0,
        steps: 0,
        cost_nanos: 0,
        to_diagnosis_ms: None,
        healed: f.heal.then_some(false),
        unapproved_writes: 0,
    };
    let Some(r) = records
        .iter()
        .filter(|r| opened_by(f, r))
        .min_by_key(|r| r.incident.opened_ms)
    else {
        return s;
    };
    s.incident = Some(r.incident.id.clone());
    s.cost_nanos = r.investigations.iter().map(|i| i.cost_nanos).sum();
    s.unapproved_writes = r
        .heals
        .iter()
        .filter(|h| h.ticket.is_some() && h.decided_by.is_none())
        .count() as u32;
    if f.heal {
        s.healed = Some(r.heals.iter().any(|h| {
            h.phase == HealPhase::Succeeded
                && h.recheck.as_ref().and_then(|c| c.passed) == Some(true)
        }));
    }
    let Some((inv, d)) = diagnosing(r) else {
        return s;
    };
    s.steps = inv.evidence.len() as u32;
    s.to_diagnosis_ms = inv.finished_ms.map(|t| t - f.injected_ms);
    (s.claims, s.backed) = d.backing(|id| inv.evidence.iter().any(|e| e.id == id && e.intact()));
    if !d.inconclusive {
        s.rank = d
            .causes
            .iter()
            .position(|c| c.kind == f.cause && c.subject == f.subject)
            .map(|i| i as u32 + 1);
    }
    s.top1 = s.rank == Some(1);
    s.top3 = s.rank.is_some_and(|r| r <= 3);
    s
}

/// Scores every fault against the record, and sums them up; `writes` are
/// the tickets that wrote the platform's own state (the effect ledger of
/// the built-in connector), each of which must be an approved heal's.
pub fn score(catalogue: &[Injected], records: &[Record<'_>], writes: &[String]) -> Report {
    let approved: std::collections::BTreeSet<&str> = records
        .iter()
        .flat_map(|r| r.heals.iter())
        .filter(|h| h.decided_by.is_some() && h.phase != HealPhase::Denied)
        .filter_map(|h| h.ticket.as_deref())
        .collect();
    let stray = writes
        .iter()
        .filter(|w| !approved.contains(w.as_str()))
        .count() as u32;
    let faults: Vec<Scored> = catalogue.iter().map(|f| score_one(f, records)).collect();
    let n = faults.len().max(1) as f64;
    let share = |k: usize| k as f64 / n;
    let claims: u32 = faults.iter().map(|s| s.claims).sum();
    let backed: u32 = faults.iter().map(|s| s.backed).sum();
    let mut times: Vec<i64> = faults.iter().filter_map(|s| s.to_diagnosis_ms).collect();
    times.sort_unstable();
    let totals = Totals {
        faults: faults.len() as u32,
        top1: share(faults.iter().filter(|s| s.top1).count()),
        top3: share(faults.iter().filter(|s| s.top3).count()),
        backed: if claims == 0 {
            0.0
        } else {
            f64::from(backed) / f64::from(claims)
        },
        mean_steps: faults.iter().map(|s| f64::from(s.steps)).sum::<f64>() / n,
        mean_cost_nanos: faults.iter().map(|s| s.cost_nanos as f64).sum::<f64>() / n,
        median_to_diagnosis_ms: times.get(times.len() / 2).copied(),
        healed: faults.iter().filter(|s| s.healed == Some(true)).count() as u32,
        heals_expected: faults.iter().filter(|s| s.healed.is_some()).count() as u32,
        writes: writes.len() as u32,
        unapproved_writes: faults.iter().map(|s| s.unapproved_writes).sum::<u32>() + stray,
    };
    Report { faults, totals }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertState, Fingerprint, Severity, Source};
    use crate::diagnose::{Cause, Claim};
    use crate::evidence::{Bounds, Evidence, ToolStatus};
    use crate::incident::IncidentStatus;
    use crate::runbook::Plan;

    fn alert(name: &str, node: &str) -> Alert {
        Alert {
            fingerprint: Fingerprint(format!("{name}-{node}")),
            name: name.into(),
            source: Source::Platform,
            state: AlertState::Firing,
            severity: Severity::Critical,
            labels: [("node".to_owned(), node.to_owned())].into(),
            annotations: Labels::new(),
            summary: String::new(),
            link: None,
            first_ms: 1_000,
            last_ms: 1_000,
            resolved_ms: None,
            count: 1,
            acknowledged_by: None,
            incident: Some("INC-1".into()),
        }
    }

    fn incident(opened_ms: i64) -> Incident {
        Incident {
            id: "INC-1".into(),
            title: "OshalNodeLost".into(),
            rule: "by-alertname".into(),
            group: Labels::new(),
            status: IncidentStatus::Triggered,
            severity: Severity::Critical,
            alerts: vec![Fingerprint("OshalNodeLost-n2".into())],
            opened_ms,
            acknowledged_ms: None,
            mitigated_ms: None,
            resolved_ms: None,
            timeline: Vec::new(),
        }
    }

    fn investigation(causes: &[(CauseKind, &str)], evidence: &[&str]) -> Investigation {
        let mut i = Investigation::start(
            "g-1".into(),
            "OshalNodeLost".into(),
            Plan {
                runbooks: vec![],
                tasks: vec![],
                skipped: vec![],
            },
            Bounds::default(),
            1_500,
        );
        i.phase = Phase::Succeeded;
        i.finished_ms = Some(4_000);
        i.cost_nanos = 70;
        i.evidence = evidence
            .iter()
            .map(|id| {
                Evidence::record(
                    (*id).into(),
                    "get_bots",
                    serde_json::json!({}),
                    ToolStatus::Success,
                    serde_json::json!({"bots": []}),
                    String::new(),
                    2_000,
                )
            })
            .collect();
        i.diagnosis = Some(Diagnosis {
            meaning: String::new(),
            findings: vec![Claim {
                text: "n2 is gone".into(),
                evidence: vec!["E-1".into()],
            }],
            causes: causes
                .iter()
                .map(|(kind, subject)| Cause {
                    kind: *kind,
                    subject: (*subject).into(),
                    score: 3,
                    supports: vec![Claim {
                        text: "seen".into(),
                        evidence: vec!["E-2".into()],
                    }],
                    against: vec![],
                })
                .collect(),
            next_steps: vec![],
            inconclusive: false,
        });
        i
    }

    fn injected(injected_ms: i64) -> Injected {
        Injected {
            fault: "kill -9 node n2".into(),
            alert: "OshalNodeLost".into(),
            labels: [("node".to_owned(), "n2".to_owned())].into(),
            cause: CauseKind::NodeDown,
            subject: "n2".into(),
            heal: false,
            injected_ms,
        }
    }

    #[test]
    fn a_fault_is_scored_from_the_incident_it_opened() {
        let alerts = [alert("OshalNodeLost", "n2")];
        let inc = incident(1_200);
        let invs = [investigation(
            &[(CauseKind::StoreDown, "store"), (CauseKind::NodeDown, "n2")],
            &["E-1", "E-2"],
        )];
        let records = [Record {
            incident: &inc,
            alerts: &alerts,
            investigations: &invs,
            heals: &[],
        }];
        let s = score_one(&injected(1_000), &records);
        assert_eq!(s.incident.as_deref(), Some("INC-1"));
        assert_eq!((s.rank, s.top1, s.top3), (Some(2), false, true));
        assert_eq!((s.claims, s.backed, s.steps), (3, 3, 2));
        assert_eq!((s.to_diagnosis_ms, s.cost_nanos), (Some(3_000), 70));

        // A claim naming evidence that was not kept is not backed.
        let thin = [investigation(&[(CauseKind::NodeDown, "n2")], &["E-1"])];
        let records = [Record {
            incident: &inc,
            alerts: &alerts,
            investigations: &thin,
            heals: &[],
        }];
        let s = score_one(&injected(1_000), &records);
        assert!(s.top1);
        assert_eq!((s.claims, s.backed), (2, 1));

        // An incident from before the injection, or of another node, is
        // not the fault's.
        let late = score_one(&injected(1_200 + SLACK_MS + 1), &records);
        assert_eq!((late.incident, late.top1), (None, false));
        let mut other = injected(1_000);
        other.labels.insert("node".into(), "n3".into());
        assert!(score_one(&other, &records).incident.is_none());
    }

    #[test]
    fn totals_are_shares_over_every_fault_missed_ones_included() {
        let alerts = [alert("OshalNodeLost", "n2")];
        let inc = incident(1_200);
        let invs = [investigation(
            &[(CauseKind::NodeDown, "n2")],
            &["E-1", "E-2"],
        )];
        let records = [Record {
            incident: &inc,
            alerts: &alerts,
            investigations: &invs,
            heals: &[],
        }];
        let mut budget = injected(1_000);
        budget.alert = "OshalBudgetExhausted".into();
        budget.heal = true;
        let r = score(&[injected(1_000), budget], &records, &["w-9".into()]);
        assert_eq!(r.totals.faults, 2);
        assert!((r.totals.top1 - 0.5).abs() < 1e-9);
        assert!((r.totals.backed - 1.0).abs() < 1e-9);
        assert_eq!((r.totals.healed, r.totals.heals_expected), (0, 1));
        assert_eq!(
            (r.totals.writes, r.totals.unapproved_writes),
            (1, 1),
            "a write of a ticket no heal approved"
        );
        assert_eq!(r.totals.median_to_diagnosis_ms, Some(3_000));
        let json = serde_json::to_value(&r).unwrap();
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }
}
