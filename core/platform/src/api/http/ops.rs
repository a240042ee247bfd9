//! Handlers of the operations routes: the Alertmanager and PagerDuty
//! webhooks, alerts and incidents read and moved, the monitor's settings,
//! silences, maintenance windows and change events. A tenant's token acts
//! on its own tenant's alone; another's read as absent.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use oshal_ops::alert::{Alert, Source};
use oshal_ops::monitor::{ChangeEvent, Input};
use oshal_ops::report::{Postmortem, PostmortemEdit};
use oshal_ops::rule::{MaintenanceWindow, Settings, Silence};

use super::body::json_body;
use super::extract::{Params, PathId};
use super::{ApiResult, AppState, actor};
use crate::api::tokens::Principal;
use crate::api::{ApiError, ErrorKind};
use crate::ops::{
    AlertRow, AlertsQuery, ChangesQuery, HealDecision, IncidentSummary, IncidentView, Ingested,
    MoveIncident, Operations, OpsQuery, PagerDutyAck, SettingsView,
};

fn ops(state: &AppState) -> ApiResult<&Operations> {
    state.ops.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            "this controller runs no operations loop",
        )
    })
}

pub(super) async fn alertmanager(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(q): Params<OpsQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Ingested>> {
    let ops = ops(&state)?;
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    let body: serde_json::Value = json_body(&headers, body).await?;
    Ok(Json(
        ops.ingest(tenant.as_deref(), Source::Alertmanager, body)
            .await?,
    ))
}

pub(super) async fn pagerduty(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(q): Params<OpsQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let ops = ops(&state)?;
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    let body: serde_json::Value = json_body(&headers, body).await?;
    let got = ops
        .ingest(tenant.as_deref(), Source::Pagerduty, body)
        .await?;
    let dedup_key = got
        .dedup_key
        .or_else(|| got.alerts.first().cloned())
        .unwrap_or_default();
    let ack = PagerDutyAck {
        status: "success".into(),
        message: "Event processed".into(),
        dedup_key,
    };
    Ok((StatusCode::ACCEPTED, Json(ack)).into_response())
}

pub(super) async fn alerts(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(mut q): Params<AlertsQuery>,
) -> ApiResult<Json<Vec<AlertRow>>> {
    if q.limit.is_some_and(|n| n == 0 || n > crate::ops::MAX_LIST) {
        return Err(ApiError::new(ErrorKind::Invalid, "limit must be 1 to 1000")
            .field("limit")
            .limit(u64::from(crate::ops::MAX_LIST)));
    }
    q.tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    Ok(Json(ops(&state)?.alerts(who.only(), &q).await?))
}

pub(super) async fn acknowledge(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    Params(q): Params<OpsQuery>,
) -> ApiResult<Json<Alert>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    Ok(Json(
        ops(&state)?
            .acknowledge_alert(tenant.as_deref(), &id, &actor(&who))
            .await?,
    ))
}

pub(super) async fn incidents(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Vec<IncidentSummary>>> {
    Ok(Json(ops(&state)?.incidents(who.only()).await))
}

pub(super) async fn incident(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    Params(q): Params<OpsQuery>,
) -> ApiResult<Json<IncidentView>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    Ok(Json(ops(&state)?.incident(tenant.as_deref(), &id).await?))
}

pub(super) async fn postmortem(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    Params(q): Params<OpsQuery>,
) -> ApiResult<Json<Postmortem>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    Ok(Json(ops(&state)?.postmortem(tenant.as_deref(), &id).await?))
}

pub(super) async fn edit_postmortem(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    Params(q): Params<OpsQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Postmortem>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    let edit: PostmortemEdit = json_body(&headers, body).await?;
    Ok(Json(
        ops(&state)?
            .write_postmortem(tenant.as_deref(), &id, Some(edit), &actor(&who))
            .await?,
    ))
}

pub(super) async fn publish_postmortem(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    Params(q): Params<OpsQuery>,
) -> ApiResult<Json<Postmortem>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    Ok(Json(
        ops(&state)?
            .write_postmortem(tenant.as_deref(), &id, None, &actor(&who))
            .await?,
    ))
}

pub(super) async fn decide_heal(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    Params(q): Params<OpsQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<IncidentView>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    let req: HealDecision = json_body(&headers, body).await?;
    Ok(Json(
        ops(&state)?
            .decide_heal(tenant.as_deref(), &id, req, &actor(&who))
            .await?,
    ))
}

pub(super) async fn investigate_incident(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    Params(q): Params<OpsQuery>,
) -> ApiResult<Json<IncidentView>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    Ok(Json(
        ops(&state)?
            .investigate_again(tenant.as_deref(), &id)
            .await?,
    ))
}

pub(super) async fn move_incident(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<IncidentView>> {
    let mut req: MoveIncident = json_body(&headers, body).await?;
    req.tenant = who.fence(req.tenant.as_deref(), "tenant")?;
    Ok(Json(
        ops(&state)?.move_incident(&id, req, &actor(&who)).await?,
    ))
}

pub(super) async fn settings(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(q): Params<OpsQuery>,
) -> ApiResult<Json<SettingsView>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    Ok(Json(ops(&state)?.settings(tenant.as_deref()).await?))
}

pub(super) async fn set_settings(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(q): Params<OpsQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<SettingsView>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    let settings: Settings = json_body(&headers, body).await?;
    // Heal rules say what the platform may write: the operator's alone.
    if who.only().is_some() {
        let now = ops(&state)?.settings(tenant.as_deref()).await?;
        if now.settings.heal != settings.heal {
            return Err(ApiError::new(
                ErrorKind::Forbidden,
                "heal rules are set with the operator's token alone",
            )
            .field("heal"));
        }
    }
    Ok(Json(
        ops(&state)?
            .set_settings(tenant.as_deref(), settings, &actor(&who))
            .await?,
    ))
}

pub(super) async fn changes(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(q): Params<ChangesQuery>,
) -> ApiResult<Json<Vec<ChangeEvent>>> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    let since = q.since_ms.unwrap_or(0);
    if since < 0 {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            "since_ms: must be a unix time in ms, at least 0",
        )
        .field("since_ms"));
    }
    Ok(Json(ops(&state)?.changes(tenant.as_deref(), since).await?))
}

/// Reads a body of `T`, makes it an input (with who made it) and adds it
/// to the tenant's monitor: 201 with the settings view.
async fn add<T: serde::de::DeserializeOwned>(
    state: AppState,
    who: Principal,
    q: OpsQuery,
    headers: HeaderMap,
    body: Body,
    input: impl FnOnce(T, String) -> Input,
) -> ApiResult<Response> {
    let tenant = who.fence(q.tenant.as_deref(), "tenant")?;
    let value: T = json_body(&headers, body).await?;
    let view = ops(&state)?
        .add(tenant.as_deref(), input(value, actor(&who)))
        .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(super) async fn silence(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(q): Params<OpsQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    add(state, who, q, headers, body, |silence: Silence, by| {
        Input::Silence { silence, by }
    })
    .await
}

pub(super) async fn maintenance(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(q): Params<OpsQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    add(
        state,
        who,
        q,
        headers,
        body,
        |window: MaintenanceWindow, by| Input::Maintenance { window, by },
    )
    .await
}

pub(super) async fn change(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Params(q): Params<OpsQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    add(state, who, q, headers, body, |change: ChangeEvent, _| {
        Input::Change(change)
    })
    .await
}
