//! Attaching to fleets: the list (in the app's settings), adding one (its
//! token to the OS keyring), switching in one call, removing one.

use tauri::{AppHandle, State};
use tauri_plugin_store::StoreExt;

use super::CommandResult;
use crate::desktop::{Connection, Desktop};
use crate::fleets::{self, Fleet, NewFleet};
use oshal_core::api::{ApiError, ErrorKind};

/// The settings file, next to the embedded store in the app's data
/// directory (`OSHAL_DATA_DIR` moves both).
pub const SETTINGS: &str = "settings.json";
const FLEETS_KEY: &str = "fleets";

fn settings_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorKind::Internal, format!("the app's settings: {e}"))
}

fn load(app: &AppHandle, desktop: &Desktop) -> CommandResult<Vec<Fleet>> {
    let store = app
        .store(desktop.data_dir().join(SETTINGS))
        .map_err(settings_error)?;
    match store.get(FLEETS_KEY) {
        None => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v).map_err(settings_error),
    }
}

fn save(app: &AppHandle, desktop: &Desktop, list: &[Fleet]) -> CommandResult<()> {
    let store = app
        .store(desktop.data_dir().join(SETTINGS))
        .map_err(settings_error)?;
    store.set(
        FLEETS_KEY,
        serde_json::to_value(list).map_err(settings_error)?,
    );
    store.save().map_err(settings_error)
}

/// The fleets this window knows (names and URLs; tokens stay in the keyring).
#[tauri::command]
#[specta::specta]
pub fn fleets(app: AppHandle, desktop: State<'_, Desktop>) -> CommandResult<Vec<Fleet>> {
    load(&app, &desktop)
}

/// Checks the fleet, attaches to it (which proves URL and token), then keeps
/// it: the token in the OS keyring, the name and URL in the settings. A
/// fleet of the same name is replaced.
#[tauri::command]
#[specta::specta]
pub async fn add_fleet(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    fleet: NewFleet,
) -> CommandResult<Connection> {
    let (fleet, token) = fleet.check()?;
    let connection = desktop.attach(fleet.clone(), &token).await?;
    fleets::save_token(&fleet.name, &token)?;
    let mut list = load(&app, &desktop)?;
    list.retain(|f| f.name != fleet.name);
    list.push(fleet);
    list.sort_by(|a, b| a.name.cmp(&b.name));
    save(&app, &desktop, &list)?;
    Ok(connection)
}

/// Switches the window: to the named fleet, or to the embedded controller
/// when `name` is absent.
#[tauri::command]
#[specta::specta]
pub async fn attach(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    name: Option<String>,
) -> CommandResult<Connection> {
    let Some(name) = name else {
        return Ok(desktop.detach());
    };
    let fleet = load(&app, &desktop)?
        .into_iter()
        .find(|f| f.name == name)
        .ok_or_else(|| {
            ApiError::new(ErrorKind::NotFound, format!("no fleet named {name:?}")).field("name")
        })?;
    let token = fleets::load_token(&fleet.name)?;
    desktop.attach(fleet, &token).await
}

/// Forgets a fleet and its token; if the window was on it, it goes back to
/// the embedded controller.
#[tauri::command]
#[specta::specta]
pub fn remove_fleet(
    app: AppHandle,
    desktop: State<'_, Desktop>,
    name: String,
) -> CommandResult<Connection> {
    let mut list = load(&app, &desktop)?;
    let before = list.len();
    list.retain(|f| f.name != name);
    if list.len() == before {
        return Err(
            ApiError::new(ErrorKind::NotFound, format!("no fleet named {name:?}")).field("name"),
        );
    }
    fleets::delete_token(&name)?;
    save(&app, &desktop, &list)?;
    let now = desktop.connection();
    if !now.embedded && now.label == name {
        return Ok(desktop.detach());
    }
    Ok(now)
}

/// Every controller this window knows, each read now: the embedded one and
/// every saved fleet, labelled, with their figures or why they could not
/// be read.
#[tauri::command]
#[specta::specta]
pub async fn overview(
    app: AppHandle,
    desktop: State<'_, Desktop>,
) -> CommandResult<Vec<crate::overview::FleetSummary>> {
    let list = load(&app, &desktop)?;
    let current = desktop.connection().label;
    let local = crate::overview::local(desktop.local(), current == fleets::LOCAL);
    let remotes = futures::future::join_all(
        list.iter()
            .map(|f| crate::overview::remote(f, current == f.name)),
    );
    let (local, remotes) = tokio::join!(local, remotes);
    Ok(std::iter::once(local).chain(remotes).collect())
}
