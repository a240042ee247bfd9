//! Spend: the ledger summarised.

use oshal_core::cost::CostSummary;
use tauri::State;

use super::CommandResult;
use crate::desktop::{Desktop, Target};

#[tauri::command]
#[specta::specta]
pub async fn cost(desktop: State<'_, Desktop>) -> CommandResult<CostSummary> {
    match desktop.target() {
        Target::Local(c) => Ok(c.cost_summary().await?),
        Target::Fleet(r) => Ok(r.client.cost_summary().await?),
    }
}
