//! Handlers of the workflow routes: specs checked, runs started, listed,
//! read (with their history), decided, retried from a node and stopped. A
//! tenant's token sees and acts on its own tenant's runs alone; another's
//! read as absent.

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
use crate::workflow::{
    Decision, DefinitionDiff, DefinitionQuery, DefinitionView, GenerateRequest, Generated,
    HistoryEntry, NewDefinition, NewRun, PendingApproval, RetryRequest, RunSummary, RunView, Shape,
    SpecSource, StopRequest, UpgradeRequest, UpgradeView, Validation, Workflows,
};

fn runs(state: &AppState) -> ApiResult<&Workflows> {
    state
        .workflows
        .as_ref()
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "this controller runs no workflows"))
}

pub(super) async fn validate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Validation>> {
    runs(&state)?;
    let source: SpecSource = json_body(&headers, body).await?;
    check_source(&source.spec)?;
    Ok(Json(crate::workflow::validate(&source)))
}

/// What the contract says of `spec`: an object, or a text of at most
/// `MAX_SPEC_BYTES` characters (the spec's own checks count bytes).
fn check_source(spec: &serde_json::Value) -> ApiResult<()> {
    let limit = oshal_workflow::spec::MAX_SPEC_BYTES;
    match spec {
        serde_json::Value::Object(_) => Ok(()),
        serde_json::Value::String(t) if t.chars().count() <= limit => Ok(()),
        serde_json::Value::String(t) => Err(ApiError::new(
            ErrorKind::Invalid,
            format!(
                "spec is {} characters; the limit is {limit}",
                t.chars().count()
            ),
        )
        .field("spec")
        .limit(limit as u64)),
        _ => Err(ApiError::new(
            ErrorKind::Invalid,
            "spec must be a WorkflowSpec object, or its JSON or YAML text",
        )
        .field("spec")),
    }
}

pub(super) async fn start(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let mut new: NewRun = json_body(&headers, body).await?;
    if !new.spec.is_null() {
        check_source(&new.spec)?;
    }
    new.tenant = who.fence(new.tenant.as_deref(), "tenant")?;
    let view = runs(&state)?.start_run(new, &actor(&who)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<RunSummary>>> {
    Ok(Json(runs(&state)?.list(who.only())))
}

pub(super) async fn publish(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let mut new: NewDefinition = json_body(&headers, body).await?;
    check_source(&new.spec)?;
    new.tenant = who.fence(new.tenant.as_deref(), "tenant")?;
    let view = runs(&state)?.publish(new, &actor(&who)).await?;
    let status = if view.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

pub(super) async fn definitions(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<DefinitionView>>> {
    Ok(Json(runs(&state)?.definitions(who.only())))
}

pub(super) async fn definition(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(name): PathId,
    Params(q): Params<DefinitionQuery>,
) -> ApiResult<Json<Vec<DefinitionView>>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    Ok(Json(
        runs(&state)?.definition(&name, tenant.as_deref()).await?,
    ))
}

pub(super) async fn compare(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<DefinitionDiff>> {
    let mut new: NewDefinition = json_body(&headers, body).await?;
    check_source(&new.spec)?;
    new.tenant = who.fence(new.tenant.as_deref(), "tenant")?;
    Ok(Json(runs(&state)?.compare(&new).await?))
}

pub(super) async fn generate(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Generated>> {
    let mut req: GenerateRequest = json_body(&headers, body).await?;
    req.tenant = who.fence(req.tenant.as_deref(), "tenant")?;
    Ok(Json(runs(&state)?.generate(req).await?))
}

pub(super) async fn shapes(State(state): State<AppState>) -> ApiResult<Json<Vec<Shape>>> {
    runs(&state)?;
    Ok(Json(crate::workflow::shapes()))
}

pub(super) async fn run(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
) -> ApiResult<Json<RunView>> {
    Ok(Json(runs(&state)?.view(&id, who.only())?))
}

pub(super) async fn history(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
) -> ApiResult<Json<Vec<HistoryEntry>>> {
    Ok(Json(runs(&state)?.history(&id, who.only()).await?))
}

pub(super) async fn decide(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<RunView>> {
    let decision: Decision = json_body(&headers, body).await?;
    // The server's token decides as `operator`; a tenant's operator-role
    // token (the route lets no viewer through) as `tenant`.
    let approver = match who {
        Principal::Operator => "operator",
        Principal::Tenant { .. } => "tenant",
    };
    Ok(Json(
        runs(&state)?
            .decide(&id, who.only(), decision, approver, &actor(&who))
            .await?,
    ))
}

pub(super) async fn retry(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<RunView>> {
    let request: RetryRequest = json_body(&headers, body).await?;
    Ok(Json(
        runs(&state)?
            .retry(&id, who.only(), request, &actor(&who))
            .await?,
    ))
}

pub(super) async fn stop(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<RunView>> {
    let request: StopRequest = json_body(&headers, body).await?;
    Ok(Json(
        runs(&state)?
            .stop(&id, who.only(), request, &actor(&who))
            .await?,
    ))
}

pub(super) async fn upgrade(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UpgradeView>> {
    let request: UpgradeRequest = json_body(&headers, body).await?;
    Ok(Json(
        runs(&state)?
            .upgrade(&id, who.only(), request, &actor(&who))
            .await?,
    ))
}

pub(super) async fn approvals(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<PendingApproval>>> {
    Ok(Json(runs(&state)?.approvals(who.only())))
}
