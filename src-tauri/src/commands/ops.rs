//! The operations loop: alerts and incidents read, an alert acknowledged,
//! an incident moved, a pending heal approved or denied, its postmortem
//! drafted, edited and published, the
//! monitor's settings, on the embedded controller or, through the API, on
//! the attached fleet's.

use oshal_core::api::routes as r;
use oshal_core::ops::{
    AlertRow, AlertsQuery, HealDecision, IncidentSummary, IncidentView, MoveIncident, OpsQuery,
    SettingsView,
};
use oshal_ops::alert::{Alert, AlertState};
use oshal_ops::report::{Postmortem, PostmortemEdit};
use tauri::State;

use super::CommandResult;
use crate::desktop::{Desktop, Target};

/// Who acts from the window on the embedded controller.
const OPERATOR: &str = "desktop operator";

/// Alerts, newest report first (all states, or one).
#[tauri::command]
#[specta::specta]
pub async fn ops_alerts(
    desktop: State<'_, Desktop>,
    state: Option<AlertState>,
) -> CommandResult<Vec<AlertRow>> {
    let query = AlertsQuery {
        state,
        ..AlertsQuery::default()
    };
    match desktop.target() {
        Target::Local(_) => Ok(desktop.ops().alerts(None, &query).await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::ListAlerts>((), Some(&query), None)
            .await?),
    }
}

/// Acknowledges a firing alert of `tenant` (the default if none).
#[tauri::command]
#[specta::specta]
pub async fn ops_acknowledge(
    desktop: State<'_, Desktop>,
    fingerprint: String,
    tenant: Option<String>,
) -> CommandResult<Alert> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .ops()
            .acknowledge_alert(tenant.as_deref(), &fingerprint, OPERATOR)
            .await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::AcknowledgeAlert>(r::Id(fingerprint), Some(&OpsQuery { tenant }), None)
            .await?),
    }
}

/// Incidents, newest first.
#[tauri::command]
#[specta::specta]
pub async fn ops_incidents(desktop: State<'_, Desktop>) -> CommandResult<Vec<IncidentSummary>> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.ops().incidents(None).await),
        Target::Fleet(f) => Ok(f.client.request::<r::ListIncidents>((), None, None).await?),
    }
}

/// One incident with its alerts, timeline, MTTA and MTTR.
#[tauri::command]
#[specta::specta]
pub async fn ops_incident(
    desktop: State<'_, Desktop>,
    id: String,
    tenant: Option<String>,
) -> CommandResult<IncidentView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.ops().incident(tenant.as_deref(), &id).await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::GetIncident>(r::Id(id), Some(&OpsQuery { tenant }), None)
            .await?),
    }
}

/// Investigates an open incident again.
#[tauri::command]
#[specta::specta]
pub async fn ops_investigate(
    desktop: State<'_, Desktop>,
    id: String,
    tenant: Option<String>,
) -> CommandResult<IncidentView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .ops()
            .investigate_again(tenant.as_deref(), &id)
            .await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::InvestigateIncident>(r::Id(id), Some(&OpsQuery { tenant }), None)
            .await?),
    }
}

/// Acknowledges, mitigates or resolves an incident.
#[tauri::command]
#[specta::specta]
pub async fn ops_move(
    desktop: State<'_, Desktop>,
    id: String,
    request: MoveIncident,
) -> CommandResult<IncidentView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.ops().move_incident(&id, request, OPERATOR).await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::ChangeIncident>(r::Id(id), None, Some(&request))
            .await?),
    }
}

/// The monitor's settings, silences, maintenance windows and changes.
#[tauri::command]
#[specta::specta]
pub async fn ops_settings(
    desktop: State<'_, Desktop>,
    tenant: Option<String>,
) -> CommandResult<SettingsView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.ops().settings(tenant.as_deref()).await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::GetOpsSettings>((), Some(&OpsQuery { tenant }), None)
            .await?),
    }
}

/// An incident's postmortem: published, or the draft its record supports.
#[tauri::command]
#[specta::specta]
pub async fn ops_postmortem(
    desktop: State<'_, Desktop>,
    id: String,
    tenant: Option<String>,
) -> CommandResult<Postmortem> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.ops().postmortem(tenant.as_deref(), &id).await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::GetPostmortem>(r::Id(id), Some(&OpsQuery { tenant }), None)
            .await?),
    }
}

/// Approves or denies an incident's pending heal.
#[tauri::command]
#[specta::specta]
pub async fn ops_decide_heal(
    desktop: State<'_, Desktop>,
    id: String,
    tenant: Option<String>,
    decision: HealDecision,
) -> CommandResult<IncidentView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .ops()
            .decide_heal(tenant.as_deref(), &id, decision, OPERATOR)
            .await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::DecideHeal>(r::Id(id), Some(&OpsQuery { tenant }), Some(&decision))
            .await?),
    }
}

/// Edits a postmortem's prose, or publishes it (`edit` absent).
#[tauri::command]
#[specta::specta]
pub async fn ops_write_postmortem(
    desktop: State<'_, Desktop>,
    id: String,
    tenant: Option<String>,
    edit: Option<PostmortemEdit>,
) -> CommandResult<Postmortem> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .ops()
            .write_postmortem(tenant.as_deref(), &id, edit, OPERATOR)
            .await?),
        Target::Fleet(f) => {
            let query = OpsQuery { tenant };
            Ok(match edit {
                Some(edit) => {
                    f.client
                        .request::<r::EditPostmortem>(r::Id(id), Some(&query), Some(&edit))
                        .await?
                }
                None => {
                    f.client
                        .request::<r::PublishPostmortem>(r::Id(id), Some(&query), None)
                        .await?
                }
            })
        }
    }
}
