//! Health, and which controller the window drives.

use oshal_core::controller::Health;
use tauri::State;

use super::CommandResult;
use crate::desktop::{Connection, Desktop, Target};

#[tauri::command]
#[specta::specta]
pub async fn health(desktop: State<'_, Desktop>) -> CommandResult<Health> {
    match desktop.target() {
        Target::Local(c) => Ok(c.health().await),
        Target::Fleet(r) => Ok(r.client.health().await?),
    }
}

#[tauri::command]
#[specta::specta]
pub fn connection(desktop: State<'_, Desktop>) -> Connection {
    desktop.connection()
}
