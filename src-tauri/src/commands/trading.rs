//! The trading desk: paper sessions opened, read and killed, on the
//! embedded controller's desk or, through the API, on the attached fleet's.

use oshal_core::trading::{
    Blotter, CloseRequest, KillRequest, KillView, NewSession, OrderView, OrdersQuery, RecapView,
    SessionView, StateChangeView, StateRequest,
};
use tauri::State;

use super::CommandResult;
use crate::desktop::{Desktop, Target};

/// Who acts from the window on the embedded desk.
const OPERATOR: &str = "desktop operator";

/// Every session, newest first.
#[tauri::command]
#[specta::specta]
pub async fn desk_sessions(desktop: State<'_, Desktop>) -> CommandResult<Vec<SessionView>> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.trading().list(None)),
        Target::Fleet(r) => Ok(r.client.sessions().await?),
    }
}

/// One session: its flow, position, P&L, kills and fill hash.
#[tauri::command]
#[specta::specta]
pub async fn desk_session(desktop: State<'_, Desktop>, id: String) -> CommandResult<SessionView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.trading().view(&id, None)?),
        Target::Fleet(r) => Ok(r.client.session(id).await?),
    }
}

/// A session's signals (with tickets, checks, dispositions) and fills.
#[tauri::command]
#[specta::specta]
pub async fn desk_blotter(desktop: State<'_, Desktop>, id: String) -> CommandResult<Blotter> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.trading().blotter(&id, None)?),
        Target::Fleet(r) => Ok(r.client.blotter(id).await?),
    }
}

/// What a session earned, by strategy, day and bot.
#[tauri::command]
#[specta::specta]
pub async fn desk_recap(desktop: State<'_, Desktop>, id: String) -> CommandResult<RecapView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.trading().recap(&id, None)?),
        Target::Fleet(r) => Ok(r.client.recap(id).await?),
    }
}

/// Opens a paper session and starts it.
#[tauri::command]
#[specta::specta]
pub async fn desk_open(
    desktop: State<'_, Desktop>,
    spec: NewSession,
) -> CommandResult<SessionView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.trading().open(spec, OPERATOR).await?),
        Target::Fleet(r) => Ok(r.client.open_session(&spec).await?),
    }
}

/// Pulls a session's kill switch.
#[tauri::command]
#[specta::specta]
pub async fn desk_kill(
    desktop: State<'_, Desktop>,
    id: String,
    request: KillRequest,
) -> CommandResult<KillView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.trading().kill(&id, None, request, OPERATOR).await?),
        Target::Fleet(r) => Ok(r.client.kill_session(id, &request).await?),
    }
}

/// Sets the trading state of a session's desk, or of one bot's signals.
#[tauri::command]
#[specta::specta]
pub async fn desk_state(
    desktop: State<'_, Desktop>,
    id: String,
    request: StateRequest,
) -> CommandResult<StateChangeView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .trading()
            .set_state(&id, None, request, OPERATOR)
            .await?),
        Target::Fleet(r) => Ok(r.client.set_session_state(id, &request).await?),
    }
}

/// A session's orders (or the one `order` names) with their ledger postings.
#[tauri::command]
#[specta::specta]
pub async fn desk_orders(
    desktop: State<'_, Desktop>,
    id: String,
    order: Option<String>,
) -> CommandResult<Vec<OrderView>> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.trading().orders(&id, None, order.as_deref())?),
        Target::Fleet(r) => Ok(r.client.session_orders(id, &OrdersQuery { order }).await?),
    }
}

/// Closes a running session: it stops where it is, for good.
#[tauri::command]
#[specta::specta]
pub async fn desk_close(
    desktop: State<'_, Desktop>,
    id: String,
    request: CloseRequest,
) -> CommandResult<SessionView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .trading()
            .close(&id, None, request, OPERATOR)
            .await?),
        Target::Fleet(r) => Ok(r.client.close_session(id, &request).await?),
    }
}
