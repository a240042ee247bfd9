//! Bots and their lanes.

use oshal_core::controller::BotView;
use tauri::State;

use crate::Desktop;

#[tauri::command]
#[specta::specta]
pub async fn bots(desktop: State<'_, Desktop>) -> Result<Vec<BotView>, ()> {
    Ok(desktop.controller.bots().await)
}
