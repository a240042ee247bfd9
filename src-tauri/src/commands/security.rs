//! The Security Center: the controls board, findings, scan, suppress.

use oshal_core::name::Named;
use oshal_core::security::{
    ControlView, Finding, FindingQuery, FindingState, ScanReport, SuppressRequest,
};
use tauri::State;

use super::CommandResult;
use crate::desktop::{Desktop, Target};

/// Who suppresses from the window.
const OPERATOR: &str = "desktop operator";

/// Each preventive control with the checks that prove it and their last runs.
#[tauri::command]
#[specta::specta]
pub async fn security_controls(desktop: State<'_, Desktop>) -> CommandResult<Vec<ControlView>> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.security().controls().await?),
        Target::Fleet(r) => Ok(r.client.security_controls().await?),
    }
}

/// Findings, worst first (all states, or one).
#[tauri::command]
#[specta::specta]
pub async fn security_findings(
    desktop: State<'_, Desktop>,
    state: Option<FindingState>,
) -> CommandResult<Vec<Finding>> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .security()
            .findings(&FindingQuery {
                state,
                ..FindingQuery::default()
            })
            .await?),
        Target::Fleet(r) => {
            let query = oshal_core::api::FindingsQuery {
                state: state.map(|s| s.as_str().to_owned()),
                ..Default::default()
            };
            Ok(r.client.security_findings(&query).await?)
        }
    }
}

/// Runs every check now.
#[tauri::command]
#[specta::specta]
pub async fn security_scan(desktop: State<'_, Desktop>) -> CommandResult<ScanReport> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.security().scan().await?),
        Target::Fleet(r) => Ok(r.client.security_scan().await?),
    }
}

/// Suppresses a finding with a justification, for some days.
#[tauri::command]
#[specta::specta]
pub async fn security_suppress(
    desktop: State<'_, Desktop>,
    id: String,
    request: SuppressRequest,
) -> CommandResult<Finding> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.security().suppress(&id, &request, OPERATOR).await?),
        Target::Fleet(r) => Ok(r.client.security_suppress(&id, &request).await?),
    }
}
