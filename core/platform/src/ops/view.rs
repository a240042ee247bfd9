//! The operations routes' types: what a webhook is answered, incidents
//! as the surfaces show them, the queries and requests.

use oshal_ops::alert::{Alert, AlertState};
use oshal_ops::incident::{Incident, IncidentAction, IncidentStatus};
use oshal_ops::intake::Refusal;
use oshal_ops::investigation::{Investigation, Phase};
use oshal_ops::monitor::{ChangeEvent, Monitor};
use oshal_ops::rule::{MaintenanceWindow, Settings, Silence};
use serde::{Deserialize, Serialize};
use specta::Type;

use crate::clock::UnixMs;
use crate::ticket::TenantId;

/// The most alerts or incidents a list answers.
pub const MAX_LIST: u32 = 1000;
/// The longest note on an incident's move.
pub const MAX_NOTE: usize = 2000;

/// Whose: a tenant (the token's own for a tenant token; `default` if
/// absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OpsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<crate::ticket::TenantId>)]
    pub tenant: Option<String>,
}

/// Which alerts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<crate::ticket::TenantId>)]
    pub tenant: Option<String>,
    /// `FIRING`, `RESOLVED`, `ACKNOWLEDGED`, `SUPPRESSED`, `MAINTENANCE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<AlertState>)]
    pub state: Option<AlertState>,
    /// At most this many, newest first (1 to 1,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Which change events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<crate::ticket::TenantId>)]
    pub tenant: Option<String>,
    /// Only those at or after this unix time in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 0)]
    pub since_ms: Option<i64>,
}

/// An alert with its tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct AlertRow {
    pub tenant: TenantId,
    #[serde(flatten)]
    pub alert: Alert,
}

/// An alert a webhook sent that was not taken, at its JSON path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct RefusedAlert {
    /// `alerts[2].labels.alertname`.
    pub path: String,
    pub reason: String,
    #[specta(type = Option<specta_typescript::Number>)]
    pub limit: Option<u64>,
}

impl From<Refusal> for RefusedAlert {
    fn from(r: Refusal) -> Self {
        Self {
            path: r.path,
            reason: r.reason,
            limit: r.limit,
        }
    }
}

/// What a webhook's payload gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Ingested {
    pub tenant: TenantId,
    /// Alerts taken (each a new alert or a report of a known one).
    pub accepted: u32,
    /// The fingerprint of each alert taken, in the payload's order.
    pub alerts: Vec<String>,
    /// Alerts refused, each at its path; the others were taken.
    pub refused: Vec<RefusedAlert>,
    /// Incidents the payload opened.
    pub opened: Vec<String>,
    /// A PagerDuty event's key.
    pub dedup_key: Option<String>,
}

/// What PagerDuty's Events API answers, so its senders read it (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct PagerDutyAck {
    /// `success`.
    pub status: String,
    pub message: String,
    /// The key the event went under: its own, or the alert's fingerprint.
    pub dedup_key: String,
}

/// An incident in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct IncidentSummary {
    pub tenant: TenantId,
    pub id: String,
    pub title: String,
    pub rule: String,
    #[schema(value_type = String)]
    #[specta(type = String)]
    pub status: IncidentStatus,
    #[schema(value_type = String)]
    #[specta(type = String)]
    pub severity: oshal_ops::alert::Severity,
    pub alerts: u32,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub opened_ms: UnixMs,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub resolved_ms: Option<UnixMs>,
    /// Its investigations, and how many of them run now.
    pub investigations: u32,
    pub investigating: u32,
    /// The newest diagnosis' top cause (`node_down: n2`), or
    /// `inconclusive`; `None` before any.
    pub diagnosis: Option<String>,
    /// Its heals, and how many wait for a person's approval.
    pub heals: u32,
    pub heals_pending: u32,
}

impl IncidentSummary {
    pub(super) fn of(tenant: &TenantId, i: &Incident, m: &Monitor) -> Self {
        let invs = m.investigations(&i.id);
        let diagnosis = invs
            .iter()
            .rev()
            .find_map(|v| v.diagnosis.as_ref())
            .map(|d| match (d.inconclusive, d.causes.first()) {
                (false, Some(c)) => format!("{}: {}", <&str>::from(c.kind), c.subject),
                _ => "inconclusive".to_owned(),
            });
        let heals = m.heals(&i.id);
        Self {
            heals: heals.len() as u32,
            // A resolved incident's pending heal can no longer be approved.
            heals_pending: heals
                .iter()
                .filter(|h| h.phase == oshal_ops::heal::HealPhase::Pending && i.status.is_open())
                .count() as u32,
            investigations: invs.len() as u32,
            investigating: invs.iter().filter(|v| v.phase == Phase::Running).count() as u32,
            diagnosis,
            tenant: tenant.clone(),
            id: i.id.clone(),
            title: i.title.clone(),
            rule: i.rule.clone(),
            status: i.status,
            severity: i.severity,
            alerts: i.alerts.len() as u32,
            opened_ms: i.opened_ms,
            resolved_ms: i.resolved_ms,
        }
    }
}

/// An incident with its alerts, its timeline and its times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct IncidentView {
    pub tenant: TenantId,
    pub incident: Incident,
    /// Its alerts, in the order they joined.
    pub alerts: Vec<Alert>,
    /// Time to acknowledge, from the recorded times.
    #[specta(type = Option<specta_typescript::Number>)]
    pub mtta_ms: Option<i64>,
    /// Time to resolve, from the recorded times.
    #[specta(type = Option<specta_typescript::Number>)]
    pub mttr_ms: Option<i64>,
    /// Its investigations, oldest first: each plan, its evidence and the
    /// diagnosis read from it.
    pub investigations: Vec<Investigation>,
    /// Its heals, oldest first: each with its dry run and blast radius,
    /// its approval, its ticket and its re-check.
    pub heals: Vec<oshal_ops::heal::Heal>,
    /// How long an approved heal's one write grant lasts.
    #[specta(type = specta_typescript::Number)]
    pub heal_grant_ms: i64,
}

impl IncidentView {
    pub(super) fn of(tenant: &TenantId, i: &Incident, m: &Monitor) -> Self {
        Self {
            tenant: tenant.clone(),
            alerts: i
                .alerts
                .iter()
                .filter_map(|f| m.alert(f))
                .cloned()
                .collect(),
            mtta_ms: i.mtta_ms(),
            mttr_ms: i.mttr_ms(),
            investigations: m.investigations(&i.id).to_vec(),
            heals: m.heals(&i.id).to_vec(),
            heal_grant_ms: super::HEAL_GRANT_MS,
            incident: i.clone(),
        }
    }
}

/// What a person may do to an incident (retriggering is the monitor's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MoveAction {
    Acknowledge,
    Mitigate,
    Resolve,
}

impl From<MoveAction> for IncidentAction {
    fn from(a: MoveAction) -> Self {
        match a {
            MoveAction::Acknowledge => Self::Acknowledge,
            MoveAction::Mitigate => Self::Mitigate,
            MoveAction::Resolve => Self::Resolve,
        }
    }
}

/// Acknowledge, mitigate or resolve an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveIncident {
    pub action: MoveAction,
    /// What was done, or why; at most 2,000 bytes.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub note: String,
    /// A known tenant; the token's tenant, or `default`, if absent.
    #[serde(default)]
    #[schema(value_type = Option<TenantId>)]
    pub tenant: Option<String>,
}

/// A person's decision on a pending heal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HealDecision {
    /// The heal's id on the incident (`H-1`).
    #[schema(max_length = 16)]
    pub heal: String,
    /// Approve (its one write runs) or deny (nothing runs).
    pub approve: bool,
    /// Why; at most 1,024 bytes.
    #[serde(default)]
    #[schema(max_length = 1024)]
    pub note: String,
}

/// A silence with its id and who made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct SilenceView {
    pub id: String,
    pub silence: Silence,
    pub by: String,
}

/// A maintenance window with its id and who made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct WindowView {
    pub id: String,
    pub window: MaintenanceWindow,
    pub by: String,
}

/// A tenant's settings of the monitor, its silences, maintenance windows
/// and change events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct SettingsView {
    pub tenant: TenantId,
    pub settings: Settings,
    pub silences: Vec<SilenceView>,
    pub windows: Vec<WindowView>,
    /// The newest change events, newest first (at most 100).
    pub changes: Vec<ChangeEvent>,
}

impl SettingsView {
    pub(super) fn of(tenant: &TenantId, m: &Monitor) -> Self {
        Self {
            tenant: tenant.clone(),
            settings: m.settings().clone(),
            silences: m
                .silences()
                .map(|(id, s, by)| SilenceView {
                    id: id.into(),
                    silence: s.clone(),
                    by: by.into(),
                })
                .collect(),
            windows: m
                .windows()
                .map(|(id, w, by)| WindowView {
                    id: id.into(),
                    window: w.clone(),
                    by: by.into(),
                })
                .collect(),
            changes: m.changes().iter().rev().take(100).cloned().collect(),
        }
    }
}
