//! Health and where the window is attached.

use oshal_core::controller::Health;
use serde::Serialize;
use specta::Type;
use tauri::State;

use crate::Desktop;

#[tauri::command]
#[specta::specta]
pub async fn health(desktop: State<'_, Desktop>) -> Result<Health, ()> {
    Ok(desktop.controller.health().await)
}

/// Which controller this window drives.
#[derive(Debug, Clone, Serialize, Type)]
pub struct Connection {
    /// `local` (embedded) or a fleet's name.
    pub label: String,
    pub embedded: bool,
}

#[tauri::command]
#[specta::specta]
pub fn connection(desktop: State<'_, Desktop>) -> Connection {
    Connection {
        label: desktop.label.clone(),
        embedded: true,
    }
}
