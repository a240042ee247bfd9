//! Handlers of the mesh routes: the mesh read live, the Headscale key
//! stored, a node enrolled, a policy change checked and written. The
//! operator's token alone reaches them (the routes' `Access::Operator`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use oshal_mesh::enrol::{Enrolled, Enrolment};
use oshal_mesh::policy::PolicyCheck;

use super::body::json_body;
use super::{ApiResult, AppState};
use crate::api::{ApiError, ErrorKind};
use crate::mesh::{Mesh, MeshKey, MeshView, PolicyChange};

fn mesh(state: &AppState) -> ApiResult<&Mesh> {
    state
        .mesh
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "this server reads no mesh"))
}

pub(super) async fn read(State(state): State<AppState>) -> ApiResult<Json<MeshView>> {
    Ok(Json(mesh(&state)?.read().await))
}

pub(super) async fn store_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let key: MeshKey = json_body(&headers, body).await?;
    mesh(&state)?.store_key(key).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn enrol(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Enrolled>)> {
    let req: Enrolment = json_body(&headers, body).await?;
    Ok((StatusCode::CREATED, Json(mesh(&state)?.enrol(req).await?)))
}

pub(super) async fn check_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<PolicyCheck>> {
    let req: PolicyChange = json_body(&headers, body).await?;
    Ok(Json(mesh(&state)?.check_policy(&req).await?))
}

pub(super) async fn set_policy(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<PolicyCheck>> {
    let req: PolicyChange = json_body(&headers, body).await?;
    Ok(Json(mesh(&state)?.set_policy(req).await?))
}
