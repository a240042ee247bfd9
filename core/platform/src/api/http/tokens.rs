//! Handlers of the token routes: who the presented token is, and the
//! operator's tenant tokens (create, list, revoke).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::body::json_body;
use super::extract::PathId;
use super::{ApiResult, AppState};
use crate::api::tokens::{NewToken, Principal, TokenView, WhoAmI};

pub(super) async fn whoami(Extension(who): Extension<Principal>) -> Json<WhoAmI> {
    Json(who.view())
}

pub(super) async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let new: NewToken = json_body(&headers, body).await?;
    let issued = state.tokens.create(new).await?;
    tracing::info!(id = %issued.info.id, tenant = %issued.info.tenant, role = ?issued.info.role, "API token created");
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

pub(super) async fn list(State(state): State<AppState>) -> ApiResult<Json<Vec<TokenView>>> {
    Ok(Json(state.tokens.list().await?))
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    state.tokens.revoke(&id).await?;
    tracing::info!(%id, "API token revoked");
    Ok(StatusCode::NO_CONTENT)
}
