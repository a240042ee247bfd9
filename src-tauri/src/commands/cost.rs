//! Spend: the ledger summarised.

use oshal_core::cost::CostSummary;
use tauri::State;

use super::CommandResult;
use crate::Desktop;

#[tauri::command]
#[specta::specta]
pub async fn cost(desktop: State<'_, Desktop>) -> CommandResult<CostSummary> {
    Ok(desktop.controller.cost_summary().await?)
}
