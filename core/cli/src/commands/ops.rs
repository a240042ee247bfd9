//! `oshal ops`: the operations loop through the API: alerts and incidents
//! listed and read, an alert acknowledged, an incident moved, a pending
//! heal approved or denied, the
//! monitor's settings read and replaced, silences, maintenance windows and
//! change events recorded, and an Alertmanager or PagerDuty payload sent
//! from a file (as the real senders post it), and the loop scored against
//! a catalogue of injected faults (`oshal ops eval`).

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use oshal_core::api::client::Client;
use oshal_core::api::routes as r;
use oshal_core::ops::{
    AlertsQuery, ChangesQuery, HealDecision, MoveAction, MoveIncident, OpsQuery,
};
use oshal_ops::eval::{Injected, Record, Report, score};
use oshal_ops::monitor::{ChangeEvent, ChangeKind};
use oshal_ops::report::PostmortemEdit;
use oshal_ops::rule::{MaintenanceWindow, Settings, Silence};
use std::path::PathBuf;

use crate::args::{ActionArgs, json, print};

pub type Args = ActionArgs<Action>;

#[derive(Subcommand)]
pub enum Action {
    /// Alerts, newest report first.
    Alerts {
        /// FIRING, RESOLVED, ACKNOWLEDGED, SUPPRESSED or MAINTENANCE.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Acknowledge a firing alert by its fingerprint.
    Ack {
        fingerprint: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Incidents, newest first.
    Incidents,
    /// An incident with its alerts, timeline, MTTA and MTTR.
    Incident {
        id: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Investigate an open incident again: a new Gather ticket, and a
    /// heal proposed if a rule matches its diagnosis now.
    Investigate {
        id: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Acknowledge, mitigate or resolve an incident.
    Move {
        id: String,
        /// acknowledge, mitigate or resolve.
        action: String,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Approve (`--approve`) or deny (`--deny`) an incident's pending heal
    /// (`H-1`): its dry run and blast radius are on `oshal ops incident`.
    /// Approved, its one write runs under one expiring grant, then the
    /// incident is investigated again.
    Heal {
        id: String,
        heal: String,
        #[arg(long, conflicts_with = "deny", required_unless_present = "deny")]
        approve: bool,
        #[arg(long)]
        deny: bool,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// An incident's postmortem: the draft its record supports (or the
    /// published one); `--edit FILE` lays a JSON edit of its prose over the
    /// draft, `--publish` publishes it once the incident is resolved.
    Postmortem {
        id: String,
        #[arg(long, conflicts_with = "publish")]
        edit: Option<PathBuf>,
        #[arg(long)]
        publish: bool,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// The monitor's settings, silences, maintenance windows and changes.
    Settings {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Replace the monitor's settings with FILE's (JSON).
    SetSettings {
        file: PathBuf,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Silence the alerts MATCHERS match (`bot="b1"`) for some minutes.
    Silence {
        #[arg(required = true)]
        matchers: Vec<String>,
        #[arg(long)]
        comment: String,
        /// 1 to 525,600 (a year).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=525_600))]
        minutes: u32,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// A maintenance window over the alerts MATCHERS match, from now.
    Maintenance {
        matchers: Vec<String>,
        #[arg(long)]
        reason: String,
        /// 1 to 525,600 (a year).
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=525_600))]
        minutes: u32,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Record a change event (node_joined, node_left, connector_approved,
    /// deploy, tickets_requeued, lanes_reset, store_outage; a budget's
    /// change is recorded when the budget is set).
    Change {
        kind: String,
        subject: String,
        #[arg(long, default_value = "")]
        detail: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Change events, oldest first (what an investigation's
    /// `list_changes` replays).
    Changes {
        /// Only those at or after this unix time in ms.
        #[arg(long, default_value_t = 0)]
        since_ms: i64,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Score the loop against a catalogue of injected faults (FILE: a JSON
    /// list of `{fault, alert, labels, cause, subject, heal, injected_ms}`):
    /// per fault and in total, top-1 and top-3 accuracy, the share of
    /// claims backed by evidence, steps, model cost, time to diagnosis,
    /// heals re-checked and writes made without an approval. A table, or
    /// the report as JSON with `--json`.
    Eval {
        catalogue: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Send FILE as an Alertmanager webhook payload (or a PagerDuty event).
    Send {
        file: PathBuf,
        #[arg(long)]
        pagerduty: bool,
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// Every incident of every tenant the token sees, scored against
/// `catalogue`.
async fn eval(client: &Client, catalogue: &[Injected]) -> Result<Report> {
    let summaries = client
        .request::<r::ListIncidents>((), None, None)
        .await
        .map_err(crate::args::api_error)?;
    let mut views = Vec::with_capacity(summaries.len());
    for s in summaries {
        let q = OpsQuery {
            tenant: Some(s.tenant.to_string()),
        };
        let v = client
            .request::<r::GetIncident>(s.id.into(), Some(&q), None)
            .await
            .map_err(crate::args::api_error)?;
        views.push(v);
    }
    // Every write the built-in connector made: each must be an approved
    // heal's ticket.
    let trail = oshal_core::api::TrailQuery {
        ticket: None,
        limit: Some("5000".into()),
    };
    let writes: Vec<String> = client
        .request::<r::ListEffects>((), Some(&trail), None)
        .await
        .map_err(crate::args::api_error)?
        .into_iter()
        .filter(|e| e.connector == oshal_ops::gather::CONNECTOR)
        .map(|e| e.ticket.to_string())
        .collect();
    let records: Vec<Record<'_>> = views
        .iter()
        .map(|v| Record {
            incident: &v.incident,
            alerts: &v.alerts,
            investigations: &v.investigations,
            heals: &v.heals,
        })
        .collect();
    Ok(score(catalogue, &records, &writes))
}

/// The report as a table: one line per fault, then the totals.
fn table(r: &Report) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let secs = |ms: Option<i64>| {
        ms.map_or_else(
            || "—".to_owned(),
            |ms| format!("{:.1} s", ms as f64 / 1000.0),
        )
    };
    let mut out = format!(
        "{:<34} {:<8} {:>5} {:>5} {:>7} {:>5} {:>10} {:>9} {:>6}\n",
        "fault", "incident", "top-1", "top-3", "backed", "steps", "cost $", "diagnosed", "healed"
    );
    for s in &r.faults {
        out += &format!(
            "{:<34} {:<8} {:>5} {:>5} {:>7} {:>5} {:>10.6} {:>9} {:>6}\n",
            oshal_core::text::clip(&s.fault, 34),
            s.incident.as_deref().unwrap_or("none"),
            yes(s.top1),
            yes(s.top3),
            format!("{}/{}", s.backed, s.claims),
            s.steps,
            s.cost_nanos as f64 / 1e9,
            secs(s.to_diagnosis_ms),
            s.healed.map_or("—", yes),
        );
    }
    let t = &r.totals;
    out += &format!(
        "total: {} faults · top-1 {:.0}% · top-3 {:.0}% · {:.0}% of claims backed by evidence · {:.1} steps · ${:.6} per incident · median {} to diagnosis · {}/{} heals re-checked · {} of {} writes without an approval\n",
        t.faults,
        t.top1 * 100.0,
        t.top3 * 100.0,
        t.backed * 100.0,
        t.mean_steps,
        t.mean_cost_nanos / 1e9,
        secs(t.median_to_diagnosis_ms),
        t.healed,
        t.heals_expected,
        t.unapproved_writes,
        t.writes
    );
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn read_json(file: &PathBuf) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
}

impl Action {
    async fn call(self, client: &Client) -> Result<serde_json::Value> {
        let q = |tenant: Option<String>| OpsQuery { tenant };
        match self {
            Self::Alerts {
                state,
                tenant,
                limit,
            } => {
                let state = match state {
                    None => None,
                    Some(s) => Some(
                        serde_json::from_value(serde_json::Value::String(s.to_uppercase()))
                            .context("--state is one of FIRING, RESOLVED, ACKNOWLEDGED, SUPPRESSED, MAINTENANCE")?,
                    ),
                };
                let query = AlertsQuery {
                    tenant,
                    state,
                    limit,
                };
                json(
                    client
                        .request::<r::ListAlerts>((), Some(&query), None)
                        .await,
                )
            }
            Self::Ack {
                fingerprint,
                tenant,
            } => json(
                client
                    .request::<r::AcknowledgeAlert>(fingerprint.into(), Some(&q(tenant)), None)
                    .await,
            ),
            Self::Incidents => json(client.request::<r::ListIncidents>((), None, None).await),
            Self::Eval {
                catalogue,
                json: as_json,
            } => {
                let catalogue: Vec<Injected> = serde_json::from_value(read_json(&catalogue)?)
                    .with_context(|| format!("{} is not a fault catalogue", catalogue.display()))?;
                let report = eval(client, &catalogue).await?;
                if as_json {
                    return Ok(serde_json::to_value(report)?);
                }
                print!("{}", table(&report));
                Ok(serde_json::Value::Null)
            }
            Self::Incident { id, tenant } => json(
                client
                    .request::<r::GetIncident>(id.into(), Some(&q(tenant)), None)
                    .await,
            ),
            Self::Investigate { id, tenant } => json(
                client
                    .request::<r::InvestigateIncident>(id.into(), Some(&q(tenant)), None)
                    .await,
            ),
            Self::Move {
                id,
                action,
                note,
                tenant,
            } => {
                let action = match action.as_str() {
                    "ack" | "acknowledge" => MoveAction::Acknowledge,
                    "mitigate" => MoveAction::Mitigate,
                    "resolve" => MoveAction::Resolve,
                    other => bail!("{other:?}: the action is acknowledge, mitigate or resolve"),
                };
                let body = MoveIncident {
                    action,
                    note,
                    tenant,
                };
                json(
                    client
                        .request::<r::ChangeIncident>(id.into(), None, Some(&body))
                        .await,
                )
            }
            Self::Settings { tenant } => json(
                client
                    .request::<r::GetOpsSettings>((), Some(&q(tenant)), None)
                    .await,
            ),
            Self::SetSettings { file, tenant } => {
                let settings: Settings = serde_json::from_value(read_json(&file)?)
                    .with_context(|| format!("{} is not the monitor's settings", file.display()))?;
                json(
                    client
                        .request::<r::SetOpsSettings>((), Some(&q(tenant)), Some(&settings))
                        .await,
                )
            }
            Self::Silence {
                matchers,
                comment,
                minutes,
                tenant,
            } => {
                let now = now_ms();
                let body = Silence {
                    matchers,
                    starts_ms: now,
                    ends_ms: now + i64::from(minutes) * 60_000,
                    comment,
                };
                json(
                    client
                        .request::<r::AddSilence>((), Some(&q(tenant)), Some(&body))
                        .await,
                )
            }
            Self::Maintenance {
                matchers,
                reason,
                minutes,
                tenant,
            } => {
                let now = now_ms();
                let body = MaintenanceWindow {
                    matchers,
                    starts_ms: now,
                    ends_ms: now + i64::from(minutes) * 60_000,
                    reason,
                };
                json(
                    client
                        .request::<r::AddMaintenance>((), Some(&q(tenant)), Some(&body))
                        .await,
                )
            }
            Self::Change {
                kind,
                subject,
                detail,
                tenant,
            } => {
                let kind: ChangeKind = serde_json::from_value(serde_json::Value::String(kind))
                    .with_context(|| {
                        use oshal_core::name::Named;
                        let kinds: Vec<&str> =
                            ChangeKind::all().iter().map(|k| k.as_str()).collect();
                        format!("the kind is one of {}", kinds.join(", "))
                    })?;
                let body = ChangeEvent {
                    kind,
                    subject,
                    detail,
                    count: 0,
                    at_ms: 0,
                };
                json(
                    client
                        .request::<r::RecordChange>((), Some(&q(tenant)), Some(&body))
                        .await,
                )
            }
            Self::Heal {
                id,
                heal,
                approve,
                deny: _,
                note,
                tenant,
            } => {
                let decision = HealDecision {
                    heal,
                    approve,
                    note,
                };
                json(
                    client
                        .request::<r::DecideHeal>(id.into(), Some(&q(tenant)), Some(&decision))
                        .await,
                )
            }
            Self::Postmortem {
                id,
                edit,
                publish,
                tenant,
            } => {
                let query = q(tenant);
                match (edit, publish) {
                    (Some(file), _) => {
                        let edit: PostmortemEdit = serde_json::from_value(read_json(&file)?)
                            .with_context(|| {
                                format!("{} is not a postmortem edit", file.display())
                            })?;
                        json(
                            client
                                .request::<r::EditPostmortem>(id.into(), Some(&query), Some(&edit))
                                .await,
                        )
                    }
                    (None, true) => json(
                        client
                            .request::<r::PublishPostmortem>(id.into(), Some(&query), None)
                            .await,
                    ),
                    (None, false) => json(
                        client
                            .request::<r::GetPostmortem>(id.into(), Some(&query), None)
                            .await,
                    ),
                }
            }
            Self::Changes { since_ms, tenant } => {
                let query = ChangesQuery {
                    tenant,
                    since_ms: Some(since_ms),
                };
                json(
                    client
                        .request::<r::ListChanges>((), Some(&query), None)
                        .await,
                )
            }
            Self::Send {
                file,
                pagerduty,
                tenant,
            } => {
                let body = read_json(&file)?;
                if pagerduty {
                    json(
                        client
                            .request::<r::PagerDutyEvent>((), Some(&q(tenant)), Some(&body))
                            .await,
                    )
                } else {
                    json(
                        client
                            .request::<r::AlertmanagerWebhook>((), Some(&q(tenant)), Some(&body))
                            .await,
                    )
                }
            }
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    print(&args.action.call(&args.api.client()?).await?)
}
