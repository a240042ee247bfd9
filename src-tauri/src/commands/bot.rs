//! Bots and their lanes.

use oshal_core::controller::BotView;
use tauri::State;

use super::CommandResult;
use crate::desktop::{Desktop, Target};

#[tauri::command]
#[specta::specta]
pub async fn bots(desktop: State<'_, Desktop>) -> CommandResult<Vec<BotView>> {
    match desktop.target() {
        Target::Local(c) => Ok(c.bots().await),
        Target::Fleet(r) => Ok(r.client.bots().await?),
    }
}
