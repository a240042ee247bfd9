//! Bots and their lanes (drain and uncordon one), and the mesh their nodes
//! are reached over.

use oshal_core::api::BotHold;
use oshal_core::controller::BotView;
use oshal_core::controller::series::Second;
use oshal_core::controller::{FlowCounts, FlowSurface};
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

/// Drains a bot: routed nothing more, what waits in its lane goes back to
/// the queue for other bots, what it holds finishes on it.
#[tauri::command]
#[specta::specta]
pub async fn drain_bot(desktop: State<'_, Desktop>, bot: String) -> CommandResult<BotHold> {
    match desktop.target() {
        Target::Local(c) => Ok(BotHold::drain(&c, &bot).await?),
        Target::Fleet(r) => Ok(r.client.drain_bot(bot).await?),
    }
}

/// Lets a drained bot take work again.
#[tauri::command]
#[specta::specta]
pub async fn uncordon_bot(desktop: State<'_, Desktop>, bot: String) -> CommandResult<BotHold> {
    match desktop.target() {
        Target::Local(c) => Ok(BotHold::uncordon(&c, &bot).await?),
        Target::Fleet(r) => Ok(r.client.uncordon_bot(bot).await?),
    }
}

/// What has flowed along each edge of the architecture: the embedded
/// controller's counts through IPC (no gate), or an attached fleet's
/// through its API and gate.
#[tauri::command]
#[specta::specta]
pub async fn flow(desktop: State<'_, Desktop>) -> CommandResult<FlowCounts> {
    match desktop.target() {
        Target::Local(c) => Ok(c.flow_counts(FlowSurface::Ipc, None)),
        Target::Fleet(r) => Ok(r
            .client
            .request::<oshal_core::api::routes::GetFlow>((), None, None)
            .await?),
    }
}

/// The last two minutes as the controller committed them, for charts
/// opened late.
#[tauri::command]
#[specta::specta]
pub async fn series(desktop: State<'_, Desktop>) -> CommandResult<Vec<Second>> {
    match desktop.target() {
        Target::Local(c) => Ok(c.recent_seconds()),
        Target::Fleet(r) => Ok(r
            .client
            .request::<oshal_core::api::routes::GetSeries>((), None, None)
            .await?),
    }
}

/// The mesh the controller reads (Headscale, tailscaled); the embedded
/// controller reads none, and says so. It has no HTTP edge either (the
/// window talks over IPC); its secret backend is the OS keyring.
#[tauri::command]
#[specta::specta]
pub async fn mesh(desktop: State<'_, Desktop>) -> CommandResult<MeshView> {
    match desktop.target() {
        Target::Local(c) => {
            let mut view = MeshView::unconfigured(c.clock().now_ms());
            if let Some(connectors) = c.connectors() {
                view.secrets = Some(connectors.broker().backend_health().await);
            }
            Ok(view)
        }
        Target::Fleet(r) => Ok(r
            .client
            .request::<oshal_core::api::routes::GetMesh>((), None, None)
            .await?),
    }
}
