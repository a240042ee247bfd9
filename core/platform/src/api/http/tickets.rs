//! Handlers of the ticket routes and health: submit (one, a batch), list,
//! count, show, cancel, approve, bulk, and clearing the walk-through's.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::auth::GateAt;
use super::body::{json_body, tickets_body};
use super::extract::{Params, PathId};
use super::{ApiResult, AppState};
use crate::api::tokens::Principal;
use crate::api::{ApiError, ErrorKind};
use crate::ticket::{NewTicket, TicketId};

fn ticket_id(raw: &str) -> ApiResult<TicketId> {
    TicketId::parse(raw)
        .map_err(|_| ApiError::new(ErrorKind::NotFound, format!("no ticket has id {raw:?}")))
}

/// A ticket `who` may see, by its raw id: another tenant's is not found,
/// exactly as one that does not exist.
async fn visible(state: &AppState, who: &Principal, raw: &str) -> ApiResult<TicketId> {
    let id = ticket_id(raw)?;
    if who.only().is_some() {
        state.controller.ticket_of(id, who.only()).await?;
    }
    Ok(id)
}

/// Answered without a token: a status and a code. The store's error text
/// goes only to a caller who sends the token.
pub(super) async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let mut health = state.controller.health().await;
    if !super::auth::holds_token(&state, &headers) {
        health.detail = None;
    }
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

pub(super) async fn counts(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<crate::api::StateCount>>> {
    Ok(Json(
        crate::api::state_counts(&state.controller, who.only()).await?,
    ))
}

pub(super) async fn submit(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(GateAt(gate_at)): Extension<GateAt>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let mut new: NewTicket = tickets_body(&headers, body).await?;
    new.tenant = who.fence(new.tenant.as_deref(), "tenant")?;
    new.gate_at_ms = Some(gate_at);
    let submitted = state.controller.submit(new).await?;
    let status = if submitted.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(submitted)).into_response())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(mut filter): Params<crate::api::TicketFilter>,
) -> ApiResult<Response> {
    filter.tenant = who.fence(filter.tenant.as_deref(), "tenant")?;
    Ok(Json(state.controller.tickets(&filter.query()?).await?).into_response())
}

pub(super) async fn bulk(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<crate::api::BulkReport>> {
    let mut request: crate::api::BulkRequest = json_body(&headers, body).await?;
    request.filter.tenant = who.fence(request.filter.tenant.as_deref(), "filter.tenant")?;
    Ok(Json(crate::api::bulk(&state.controller, &request).await?))
}

pub(super) async fn clear(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(mut query): Params<crate::api::ClearQuery>,
) -> ApiResult<Json<crate::store::Cleared>> {
    query.tenant = who.fence(query.tenant.as_deref(), "tenant")?;
    Ok(Json(crate::api::clear(&state.controller, &query).await?))
}

pub(super) async fn batch(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Extension(GateAt(gate_at)): Extension<GateAt>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<crate::api::BatchReport>> {
    let mut request: crate::api::BatchSubmit = tickets_body(&headers, body).await?;
    for (i, t) in request.tickets.iter_mut().enumerate() {
        t.tenant = who.fence(t.tenant.as_deref(), &format!("tickets[{i}].tenant"))?;
        t.gate_at_ms = Some(gate_at);
    }
    Ok(Json(
        crate::api::submit_batch(&state.controller, request).await?,
    ))
}

pub(super) async fn ticket(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let view = state
        .controller
        .ticket_of(ticket_id(&id)?, who.only())
        .await?;
    Ok(Json(view).into_response())
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let id = visible(&state, &who, &id).await?;
    Ok(Json(state.controller.cancel(id).await?).into_response())
}

pub(super) async fn approve(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    let id = visible(&state, &who, &id).await?;
    Ok(Json(state.controller.approve(id).await?).into_response())
}
