//! Clearing the walk-through's tickets (`DELETE /api/v1/tickets?tag=`): the
//! tour submits each of its tickets under an idempotency key that starts
//! with its tag, `tour:<tour id>:`, and a clear cancels those still
//! unfinished, then removes the ended ones where the store allows it (the
//! embedded SQLite; a fleet's PostgreSQL history is append-only, and they
//! stay there, tagged). Only one walk-through's whole tag is taken (its
//! UUID), and a tenant's token reaches only its own tenant's tickets.

use serde::{Deserialize, Serialize};
use specta::Type;

use super::{ApiError, ErrorKind};
use crate::controller::{Controller, ControllerError};
use crate::store::{Cleared, MAX_PAGE, Tag, TicketQuery};
use crate::ticket::{TenantId, TicketError};

/// Which walk-through's tickets a clear takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ClearQuery {
    /// One walk-through's tag: `tour:`, its UUID and `:`.
    #[param(pattern = "^tour:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:$")]
    pub tag: String,
    /// A known tenant; every tenant's if absent (a tenant's token: its own).
    #[serde(default)]
    #[param(value_type = Option<crate::ticket::TenantId>)]
    pub tenant: Option<String>,
}

/// Cancels the tag's unfinished tickets, then clears the ended ones.
pub async fn clear(controller: &Controller, query: &ClearQuery) -> Result<Cleared, ApiError> {
    let invalid = |field: &str, msg: String| ApiError::new(ErrorKind::Invalid, msg).field(field);
    let tag = Tag::parse(&query.tag)
        .map_err(|e| invalid("tag", e).limit(crate::store::tagged::MAX_TAG as u64))?;
    if !tag.is_tour() {
        return Err(invalid(
            "tag",
            format!(
                "{:?} is not a walk-through's tag: only one tour's tickets, tagged `tour:<uuid>:`, can be cleared",
                query.tag
            ),
        ));
    }
    let only = query.tenant.as_deref().map(TenantId::parse).transpose()?;
    let mut listing = TicketQuery {
        tenant: only.clone(),
        tag: Some(tag.clone()),
        limit: MAX_PAGE,
        ..TicketQuery::default()
    };
    let mut cancelled = 0;
    loop {
        let page = controller.tickets(&listing).await?;
        for t in page.tickets.iter().filter(|t| !t.state.is_terminal()) {
            match controller.cancel(t.id).await {
                Ok(_) => cancelled += 1,
                // Ended meanwhile: the clear takes it as it is.
                Err(ControllerError::Invalid(TicketError::IllegalTransition { .. })) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match page.next_cursor {
            Some(c) => listing.cursor = Some(c),
            None => break,
        }
    }
    let cleared = controller.store().clear_tagged(&tag, only.as_ref()).await;
    let cleared = cleared.map_err(ControllerError::from)?;
    Ok(Cleared {
        cancelled,
        ..cleared
    })
}
