//! The window's commands, one file per core module. Each answers with the
//! core's types or the one `ApiError` shape every surface shows, so the UI
//! handles the app and the HTTP API alike.

pub mod bot;
pub mod connector;
pub mod cost;
pub mod events;
pub mod fleet;
pub mod health;
pub mod ops;
pub mod security;
pub mod ticket;
pub mod trading;
pub mod workflow;

use oshal_core::api::{ApiError, ErrorKind};
use oshal_core::ticket::TicketId;

pub type CommandResult<T> = Result<T, ApiError>;

fn ticket_id(id: &str) -> Result<TicketId, ApiError> {
    TicketId::parse(id).map_err(|_| {
        ApiError::new(ErrorKind::Invalid, format!("{id:?} is not a ticket id")).field("id")
    })
}
