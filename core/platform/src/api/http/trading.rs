//! Handlers of the trading desk's routes: paper sessions opened, listed,
//! read (their blotter and recap), killed and set a trading state. A tenant's token sees and
//! acts on its own tenant's sessions alone; another's read as absent.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::body::json_body;
use super::extract::{Params, PathId};
use super::{ApiResult, AppState, actor};
use crate::api::tokens::Principal;
use crate::api::{ApiError, ErrorKind};
use crate::trading::{
    Blotter, CloseRequest, KillRequest, KillView, NewSession, OrderView, OrdersQuery, RecapView,
    SessionView, StateChangeView, StateRequest, Trading,
};

fn desk(state: &AppState) -> ApiResult<&Trading> {
    state
        .trading
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "this controller runs no trading desk"))
}

pub(super) async fn open(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let mut spec: NewSession = json_body(&headers, body).await?;
    spec.tenant = who.fence(spec.tenant.as_deref(), "tenant")?;
    let view = desk(&state)?.open(spec, &actor(&who)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<SessionView>>> {
    Ok(Json(desk(&state)?.list(who.only())))
}

pub(super) async fn session(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
) -> ApiResult<Json<SessionView>> {
    Ok(Json(desk(&state)?.view(&id, who.only())?))
}

pub(super) async fn blotter(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
) -> ApiResult<Json<Blotter>> {
    Ok(Json(desk(&state)?.blotter(&id, who.only())?))
}

pub(super) async fn recap(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
) -> ApiResult<Json<RecapView>> {
    Ok(Json(desk(&state)?.recap(&id, who.only())?))
}

pub(super) async fn kill(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<KillView>> {
    let request: KillRequest = json_body(&headers, body).await?;
    Ok(Json(
        desk(&state)?
            .kill(&id, who.only(), request, &actor(&who))
            .await?,
    ))
}

pub(super) async fn set_state(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<StateChangeView>> {
    let request: StateRequest = json_body(&headers, body).await?;
    Ok(Json(
        desk(&state)?
            .set_state(&id, who.only(), request, &actor(&who))
            .await?,
    ))
}

pub(super) async fn orders(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    Params(q): Params<OrdersQuery>,
) -> ApiResult<Json<Vec<OrderView>>> {
    Ok(Json(desk(&state)?.orders(
        &id,
        who.only(),
        q.order.as_deref(),
    )?))
}

pub(super) async fn close(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<SessionView>> {
    let request: CloseRequest = json_body(&headers, body).await?;
    Ok(Json(
        desk(&state)?
            .close(&id, who.only(), request, &actor(&who))
            .await?,
    ))
}
