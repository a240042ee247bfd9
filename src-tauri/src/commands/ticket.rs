//! Tickets: counts per state, pages, one ticket, submit, cancel, bulk
//! cancel and retry, the walk-through's clear — on the embedded controller
//! or the attached fleet's.

use oshal_core::api::{BulkReport, BulkRequest, ClearQuery, StateCount, TicketFilter};
use oshal_core::controller::Submitted;
use oshal_core::store::{Cleared, TicketPage, TicketView};
use oshal_core::ticket::NewTicket;
use tauri::State;

use super::{CommandResult, ticket_id};
use crate::desktop::{Desktop, Target};

#[tauri::command]
#[specta::specta]
pub async fn counts(desktop: State<'_, Desktop>) -> CommandResult<Vec<StateCount>> {
    match desktop.target() {
        Target::Local(c) => oshal_core::api::state_counts(&c, None).await,
        Target::Fleet(r) => Ok(r.client.counts().await?),
    }
}

#[tauri::command]
#[specta::specta]
pub async fn tickets(
    desktop: State<'_, Desktop>,
    filter: TicketFilter,
) -> CommandResult<TicketPage> {
    // Checked here too: a bad filter never leaves the window.
    let query = filter.query()?;
    match desktop.target() {
        Target::Local(c) => Ok(c.tickets(&query).await?),
        Target::Fleet(r) => Ok(r.client.list(&filter).await?),
    }
}

#[tauri::command]
#[specta::specta]
pub async fn ticket(desktop: State<'_, Desktop>, id: String) -> CommandResult<TicketView> {
    let id = ticket_id(&id)?;
    match desktop.target() {
        Target::Local(c) => Ok(c.ticket(id).await?),
        Target::Fleet(r) => Ok(r.client.ticket(&id.to_string()).await?),
    }
}

#[tauri::command]
#[specta::specta]
pub async fn submit(desktop: State<'_, Desktop>, ticket: NewTicket) -> CommandResult<Submitted> {
    match desktop.target() {
        Target::Local(c) => Ok(c.submit(ticket).await?),
        Target::Fleet(r) => Ok(r.client.submit(&ticket).await?),
    }
}

#[tauri::command]
#[specta::specta]
pub async fn cancel(desktop: State<'_, Desktop>, id: String) -> CommandResult<TicketView> {
    let id = ticket_id(&id)?;
    match desktop.target() {
        Target::Local(c) => Ok(c.cancel(id).await?),
        Target::Fleet(r) => Ok(r.client.cancel(&id.to_string()).await?),
    }
}

/// Cancels or retries every ticket a filter matches (dry-run first for the
/// count).
#[tauri::command]
#[specta::specta]
pub async fn bulk(desktop: State<'_, Desktop>, request: BulkRequest) -> CommandResult<BulkReport> {
    match desktop.target() {
        Target::Local(c) => oshal_core::api::bulk(&c, &request).await,
        Target::Fleet(r) => Ok(r.client.bulk(&request).await?),
    }
}

/// Clears the walk-through's tickets by its tag: the unfinished cancelled,
/// the ended removed where the store allows it.
#[tauri::command]
#[specta::specta]
pub async fn clear_tour(desktop: State<'_, Desktop>, query: ClearQuery) -> CommandResult<Cleared> {
    match desktop.target() {
        Target::Local(c) => oshal_core::api::clear(&c, &query).await,
        Target::Fleet(r) => Ok(r.client.clear(&query).await?),
    }
}
