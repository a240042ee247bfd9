//! Tickets: counts per state, pages, one ticket, submit, cancel.

use oshal_core::api::{StateCount, TicketFilter};
use oshal_core::controller::Submitted;
use oshal_core::store::{TicketPage, TicketView};
use oshal_core::ticket::NewTicket;
use tauri::State;

use super::{CommandResult, ticket_id};
use crate::Desktop;

#[tauri::command]
#[specta::specta]
pub async fn counts(desktop: State<'_, Desktop>) -> CommandResult<Vec<StateCount>> {
    oshal_core::api::state_counts(&desktop.controller).await
}

#[tauri::command]
#[specta::specta]
pub async fn tickets(
    desktop: State<'_, Desktop>,
    filter: TicketFilter,
) -> CommandResult<TicketPage> {
    Ok(desktop.controller.tickets(&filter.query()?).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn ticket(desktop: State<'_, Desktop>, id: String) -> CommandResult<TicketView> {
    Ok(desktop.controller.ticket(ticket_id(&id)?).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn submit(desktop: State<'_, Desktop>, ticket: NewTicket) -> CommandResult<Submitted> {
    Ok(desktop.controller.submit(ticket).await?)
}

#[tauri::command]
#[specta::specta]
pub async fn cancel(desktop: State<'_, Desktop>, id: String) -> CommandResult<TicketView> {
    Ok(desktop.controller.cancel(ticket_id(&id)?).await?)
}
