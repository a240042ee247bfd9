//! Handlers of the Security Center's routes: scan, findings, suppress,
//! controls, and SARIF export and import.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use oshal_kernel::name::Named;

use super::body::{json_body, read_limited};
use super::extract::{Params, PathId};
use super::{ApiResult, AppState, OPERATOR};
use crate::api::{ApiError, ErrorKind, FindingsQuery};

fn security(state: &AppState) -> ApiResult<crate::security::SecurityCenter> {
    state.security.clone().ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            "this controller runs no Security Center",
        )
    })
}

pub(super) async fn security_scan(
    State(state): State<AppState>,
) -> ApiResult<Json<crate::security::ScanReport>> {
    Ok(Json(security(&state)?.scan().await?))
}

/// The longest scanner name a findings query takes.
const MAX_SOURCE: usize = 128;

pub(super) async fn security_findings(
    State(state): State<AppState>,
    Params(p): Params<FindingsQuery>,
) -> ApiResult<Json<Vec<crate::security::Finding>>> {
    use crate::security::{FindingQuery, FindingState, store::MAX_LIST};
    let finding_state = p
        .state
        .as_deref()
        .map(|s| {
            FindingState::parse(s).ok_or_else(|| {
                ApiError::new(
                    ErrorKind::Invalid,
                    format!("state {s:?} is not one of open, suppressed, resolved"),
                )
                .field("state")
            })
        })
        .transpose()?;
    let limit = p
        .limit
        .as_deref()
        .map(|l| {
            l.parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_LIST).contains(n))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorKind::Invalid,
                        format!("limit {l:?} is outside 1..={MAX_LIST}"),
                    )
                    .field("limit")
                    .limit(u64::from(MAX_LIST))
                })
        })
        .transpose()?;
    if let Some(source) = p.source.as_deref().filter(|s| s.len() > MAX_SOURCE) {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            format!(
                "source is {} bytes; the limit is {MAX_SOURCE}",
                source.len()
            ),
        )
        .field("source")
        .limit(MAX_SOURCE as u64));
    }
    let query = FindingQuery {
        state: finding_state,
        source: p.source,
        limit,
    };
    Ok(Json(security(&state)?.findings(&query).await?))
}

pub(super) async fn security_suppress(
    State(state): State<AppState>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<crate::security::Finding>> {
    let request: crate::security::SuppressRequest = json_body(&headers, body).await?;
    Ok(Json(
        security(&state)?.suppress(&id, &request, OPERATOR).await?,
    ))
}

pub(super) async fn security_controls(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<crate::security::ControlView>>> {
    Ok(Json(security(&state)?.controls().await?))
}

pub(super) async fn security_sarif_export(State(state): State<AppState>) -> ApiResult<Response> {
    let log = security(&state)?.export_sarif().await?;
    Ok((
        [(header::CONTENT_TYPE, "application/sarif+json")],
        Json(log),
    )
        .into_response())
}

pub(super) async fn security_sarif_import(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Vec<crate::security::ScanReport>>> {
    let center = security(&state)?;
    let bytes = read_limited(body, &headers, crate::security::sarif::MAX_SARIF_BYTES).await?;
    Ok(Json(center.import_sarif(&bytes).await?))
}
