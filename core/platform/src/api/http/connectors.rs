//! Handlers of the connector routes: the catalog, credentials (write-only),
//! grants, the audit trail, the effect ledger and the integration view.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};

use super::body::json_body;
use super::extract::{Params, PathId};
use super::{ApiResult, AppState, OPERATOR};
use crate::api::tokens::Principal;
use crate::api::{ApiError, ErrorKind, GrantQuery, RevokeQuery, TrailQuery};

fn connectors(state: &AppState) -> ApiResult<crate::connector::Connectors> {
    state.controller.connectors().cloned().ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            "this controller has no connectors (they run with a local bot pool)",
        )
    })
}

pub(super) async fn connectors_list(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<crate::connector::ConnectorView>>> {
    Ok(Json(connectors(&state)?.list()))
}

pub(super) async fn catalog(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<crate::connector::ConnectorView>>> {
    Ok(Json(connectors(&state)?.catalog()))
}

pub(super) async fn catalog_import(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<crate::connector::ConnectorView>)> {
    let doc: serde_json::Value = json_body(&headers, body).await?;
    let view = connectors(&state)?.import_openapi(&doc, OPERATOR).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub(super) async fn catalog_approve(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Json<crate::connector::ConnectorView>> {
    Ok(Json(connectors(&state)?.approve(&id, OPERATOR).await?))
}

/// Stores a connector's credential in the broker's backend. Write-only: no
/// route ever answers with a credential.
pub(super) async fn connector_credential(
    State(state): State<AppState>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let value: serde_json::Value = json_body(&headers, body).await?;
    let connectors = connectors(&state)?;
    if connectors.registry().get(&id).is_none() {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("connector {id:?} not found"),
        ));
    }
    let fields = value.as_object().filter(|o| {
        !o.is_empty()
            && o.len() <= 8
            && o.values()
                .all(|v| v.as_str().is_some_and(|s| !s.is_empty() && s.len() <= 4096))
    });
    if fields.is_none() {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            "a credential is a JSON object of 1 to 8 non-empty strings of at most 4096 bytes",
        )
        .field("credential"));
    }
    connectors
        .broker()
        .store_credential(&id, &value)
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorKind::StoreUnavailable,
                format!("the secret backend refused: {e}"),
            )
        })?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn grants_list(
    State(state): State<AppState>,
    Params(q): Params<GrantQuery>,
) -> ApiResult<Json<Vec<crate::connector::store::Grant>>> {
    if let Some(bot) = &q.bot {
        crate::ticket::BotId::parse(bot).map_err(|e| ApiError::from(e).field("bot"))?;
    }
    Ok(Json(connectors(&state)?.grants(q.bot.as_deref()).await?))
}

pub(super) async fn grants_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<crate::connector::store::Grant>)> {
    let new: crate::connector::NewGrant = json_body(&headers, body).await?;
    let grant = connectors(&state)?.grant(new, OPERATOR).await?;
    Ok((StatusCode::CREATED, Json(grant)))
}

pub(super) async fn grants_revoke(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<StatusCode> {
    connectors(&state)?.revoke_grant(&id, OPERATOR).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn grants_revoke_by_query(
    State(state): State<AppState>,
    Params(q): Params<RevokeQuery>,
) -> ApiResult<StatusCode> {
    connectors(&state)?.revoke_grant(&q.id, OPERATOR).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The audit trail; a tenant's token sees its tickets' calls.
pub(super) async fn audit(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(q): Params<TrailQuery>,
) -> ApiResult<Json<Vec<crate::connector::store::AuditEntry>>> {
    let (ticket, limit) = q.parse()?;
    Ok(Json(
        connectors(&state)?.audit(ticket, who.only(), limit).await?,
    ))
}

/// The effect ledger; a tenant's token sees its tickets' writes.
pub(super) async fn effects(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(q): Params<TrailQuery>,
) -> ApiResult<Json<Vec<crate::connector::store::EffectRow>>> {
    let (ticket, limit) = q.parse()?;
    Ok(Json(
        connectors(&state)?
            .effects(ticket, who.only(), limit)
            .await?,
    ))
}

/// The integration view's snapshot (the last 200 audit rows and effects).
pub(super) async fn integrations(
    State(state): State<AppState>,
) -> ApiResult<Json<crate::connector::IntegrationView>> {
    Ok(Json(connectors(&state)?.integration(200).await?))
}
