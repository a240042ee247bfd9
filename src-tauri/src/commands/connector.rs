//! Connectors: what the integration view draws.

use oshal_core::api::{ApiError, ErrorKind};
use oshal_core::connector::IntegrationView;
use tauri::State;

use super::CommandResult;
use crate::desktop::{Desktop, Target};

/// Every connector, grant, and the recent audit trail and effects.
#[tauri::command]
#[specta::specta]
pub async fn integrations(desktop: State<'_, Desktop>) -> CommandResult<IntegrationView> {
    match desktop.target() {
        Target::Local(c) => {
            let connectors = c.connectors().ok_or_else(|| {
                ApiError::new(ErrorKind::NotFound, "this controller has no connectors")
            })?;
            Ok(connectors.integration(200).await?)
        }
        Target::Fleet(r) => Ok(r.client.integrations().await?),
    }
}
