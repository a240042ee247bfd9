//! Bots and their lanes, and the mesh their nodes are reached over.

use oshal_core::controller::BotView;
use oshal_core::mesh::MeshView;
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

/// The mesh the controller reads (Headscale, tailscaled); the embedded
/// controller reads none, and says so.
#[tauri::command]
#[specta::specta]
pub async fn mesh(desktop: State<'_, Desktop>) -> CommandResult<MeshView> {
    match desktop.target() {
        Target::Local(c) => Ok(MeshView::unconfigured(c.clock().now_ms())),
        Target::Fleet(r) => Ok(r
            .client
            .request::<oshal_core::api::routes::GetMesh>((), None, None)
            .await?),
    }
}
