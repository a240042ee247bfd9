//! Handlers of the Security Center's routes: scan, findings, suppress,
//! controls, and SARIF export and import.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
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
    Extension(who): Extension<crate::api::tokens::Principal>,
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
    let mut findings = security(&state)?.findings(&query).await?;
    if let Some(own) = who.only() {
        findings = of_tenant(&state, findings, own).await?;
    }
    Ok(Json(findings))
}

/// The findings about a tenant's data: those whose object is one of its
/// tickets (a secret in its stored text), read as that tenant. The rest
/// are about the platform, which is the operator's.
async fn of_tenant(
    state: &AppState,
    findings: Vec<crate::security::Finding>,
    tenant: &crate::ticket::TenantId,
) -> ApiResult<Vec<crate::security::Finding>> {
    let mut mine = Vec::new();
    for f in findings {
        let id = f
            .object
            .strip_prefix("ticket ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|id| crate::ticket::TicketId::parse(id).ok());
        let Some(id) = id else { continue };
        match state.controller.ticket_of(id, Some(tenant)).await {
            Ok(_) => mine.push(f),
            Err(crate::controller::ControllerError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(mine)
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
