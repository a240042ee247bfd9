use super::*;
use crate::alert::{AlertState, Fingerprint, Labels, Severity, Source};
use crate::diagnose::{CauseKind, Claim, Diagnosis};
use crate::evidence::Bounds;
use crate::runbook::Plan;

fn incident(status: IncidentStatus) -> Incident {
    let line = |at_ms, moment, subject: &str, detail: &str| TimelineEntry {
        at_ms,
        moment,
        subject: subject.into(),
        detail: detail.into(),
    };
    let mut timeline = vec![
        line(1_000, Moment::Opened, "by-alertname", "OshalNodeLost"),
        line(61_000, Moment::StatusChanged, "ana", "acknowledged: on it"),
    ];
    if status == IncidentStatus::Resolved {
        timeline.push(line(
            181_000,
            Moment::StatusChanged,
            "ana",
            "resolved: n2 restarted",
        ));
    }
    Incident {
        id: "INC-1".into(),
        title: "OshalNodeLost".into(),
        rule: "by-alertname".into(),
        group: Labels::new(),
        status,
        severity: Severity::Critical,
        alerts: vec![Fingerprint("f".repeat(32))],
        opened_ms: 1_000,
        acknowledged_ms: Some(61_000),
        mitigated_ms: None,
        resolved_ms: (status == IncidentStatus::Resolved).then_some(181_000),
        timeline,
    }
}

fn alert() -> Alert {
    Alert {
        fingerprint: Fingerprint("f".repeat(32)),
        name: "OshalNodeLost".into(),
        source: Source::Platform,
        state: AlertState::Resolved,
        severity: Severity::Critical,
        labels: [("alertname", "OshalNodeLost"), ("node", "n2")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        annotations: Labels::new(),
        summary: "node n2's bots stopped their heartbeat".into(),
        link: None,
        first_ms: 900,
        last_ms: 180_000,
        resolved_ms: Some(180_000),
        count: 2,
        acknowledged_by: None,
        incident: Some("INC-1".into()),
    }
}

fn diagnosed(inconclusive: bool) -> Investigation {
    let mut i = Investigation::start(
        "t-1".into(),
        "OshalNodeLost".into(),
        Plan {
            runbooks: vec![],
            tasks: vec![],
            skipped: vec![],
        },
        Bounds::default(),
        2_000,
    );
    i.phase = Phase::Succeeded;
    i.finished_ms = Some(5_000);
    i.cost_nanos = 700;
    i.diagnosis = Some(Diagnosis {
        meaning: "a node is gone".into(),
        findings: vec![],
        causes: vec![Cause {
            kind: CauseKind::NodeDown,
            subject: "n2".into(),
            score: 5,
            supports: vec![Claim {
                text: "node n2 has no live bot".into(),
                evidence: vec!["E-1".into(), "E-2".into()],
            }],
            against: vec![],
        }],
        next_steps: vec!["requeue node n2's tickets and restart or drain it".into()],
        inconclusive,
    });
    i
}

fn requeued(at_ms: i64, count: u32) -> ChangeEvent {
    ChangeEvent {
        kind: ChangeKind::TicketsRequeued,
        subject: "tickets".into(),
        detail: "bot n2-bot-01 lost; requeued".into(),
        count,
        at_ms,
    }
}

#[test]
fn a_draft_holds_what_the_record_holds_and_no_more() {
    let a = alert();
    let changes = [requeued(500, 3), requeued(10_000_000, 9)];
    let p = draft(
        &incident(IncidentStatus::Resolved),
        &[&a],
        &[diagnosed(false)],
        &changes,
        &[],
    );
    assert_eq!(p.status, PostmortemStatus::Draft);
    assert_eq!(p.root_causes[0].subject, "n2");
    assert!(
        p.summary.contains("node down n2 (evidence E-1, E-2)"),
        "{}",
        p.summary
    );
    assert_eq!(p.impact.affected, ["node=n2"]);
    assert_eq!(
        p.impact.tickets_requeued, 3,
        "only the requeues of its span"
    );
    assert_eq!(p.impact.reports, 2);
    assert_eq!(p.impact.model_cost_nanos, 700);
    assert_eq!((p.mtta_ms, p.mttr_ms), (Some(60_000), Some(180_000)));
    assert!(
        p.detection.contains("acknowledged by ana after 1.0 min"),
        "{}",
        p.detection
    );
    assert_eq!(p.resolution, "resolved: n2 restarted (by ana)");
    assert_eq!(
        p.action_items,
        ["requeue node n2's tickets and restart or drain it"]
    );
    assert_eq!(
        p.lessons.went_well,
        [
            "detected by platform without a person watching",
            "diagnosed from 0 tool calls kept as evidence in 3.0 s"
        ]
    );
    assert_eq!(p.investigations[0].duration_ms, Some(3_000));
    assert_eq!(p.timeline.len(), 3);
}

#[test]
fn an_inconclusive_diagnosis_is_said_and_no_cause_is_claimed() {
    let a = alert();
    let p = draft(
        &incident(IncidentStatus::Acknowledged),
        &[&a],
        &[diagnosed(true)],
        &[],
        &[],
    );
    assert!(p.root_causes.is_empty());
    assert!(
        p.summary.contains("no root cause was established"),
        "{}",
        p.summary
    );
    assert!(p.resolution.starts_with("not resolved yet"));
    assert!(
        p.lessons
            .went_wrong
            .iter()
            .any(|l| l.contains("established no cause"))
    );
    assert!(p.action_items.iter().any(|l| l.contains("runbook")));
}

#[test]
fn an_edit_changes_the_prose_only_and_names_its_field_when_refused() {
    let a = alert();
    let p = draft(
        &incident(IncidentStatus::Resolved),
        &[&a],
        &[diagnosed(false)],
        &[],
        &[],
    );
    let edit = PostmortemEdit {
        summary: Some("n2 lost power".into()),
        lessons: Some(Lessons {
            got_lucky: vec!["it was a quiet hour".into()],
            ..Lessons::default()
        }),
        ..PostmortemEdit::default()
    };
    edit.check().unwrap();
    let e = p.clone().edited(&edit, "ana");
    assert_eq!(e.summary, "n2 lost power");
    assert_eq!(e.lessons.got_lucky, ["it was a quiet hour"]);
    assert_eq!(e.root_causes, p.root_causes, "the causes are the record's");
    assert_eq!(e.edited_by.as_deref(), Some("ana"));
    let bad = PostmortemEdit {
        lessons: Some(Lessons {
            went_wrong: vec!["ok".into(), " ".into()],
            ..Lessons::default()
        }),
        ..PostmortemEdit::default()
    };
    assert_eq!(bad.check().unwrap_err().path, "lessons.went_wrong[1]");
    let long = PostmortemEdit {
        summary: Some("x".repeat(MAX_PROSE_BYTES + 1)),
        ..PostmortemEdit::default()
    };
    assert_eq!(long.check().unwrap_err().path, "summary");
}
