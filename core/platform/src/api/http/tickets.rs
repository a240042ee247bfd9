//! Handlers of the ticket routes and health: submit (one, a batch), list,
//! count, show, cancel, approve, bulk.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::body::{json_body, tickets_body};
use super::extract::{Params, PathId};
use super::{ApiResult, AppState};
use crate::api::{ApiError, ErrorKind};
use crate::ticket::{NewTicket, TicketId};

fn ticket_id(raw: &str) -> ApiResult<TicketId> {
    TicketId::parse(raw)
        .map_err(|_| ApiError::new(ErrorKind::NotFound, format!("no ticket has id {raw:?}")))
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
) -> ApiResult<Json<Vec<crate::api::StateCount>>> {
    Ok(Json(crate::api::state_counts(&state.controller).await?))
}

pub(super) async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let new: NewTicket = tickets_body(&headers, body).await?;
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
    Params(filter): Params<crate::api::TicketFilter>,
) -> ApiResult<Response> {
    Ok(Json(state.controller.tickets(&filter.query()?).await?).into_response())
}

pub(super) async fn bulk(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<crate::api::BulkReport>> {
    let request: crate::api::BulkRequest = json_body(&headers, body).await?;
    Ok(Json(crate::api::bulk(&state.controller, &request).await?))
}

pub(super) async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<crate::api::BatchReport>> {
    let request: crate::api::BatchSubmit = tickets_body(&headers, body).await?;
    Ok(Json(
        crate::api::submit_batch(&state.controller, request).await?,
    ))
}

pub(super) async fn ticket(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(state.controller.ticket(ticket_id(&id)?).await?).into_response())
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(state.controller.cancel(ticket_id(&id)?).await?).into_response())
}

pub(super) async fn approve(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(state.controller.approve(ticket_id(&id)?).await?).into_response())
}
