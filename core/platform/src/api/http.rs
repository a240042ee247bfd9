//! The HTTP and WebSocket API (axum), the edge of every remote surface.
//!
//! Every route but `/api/v1/health` requires `Authorization: Bearer <token>`,
//! on loopback too (deny by default); the token is compared in constant time
//! and never logged. Bodies are read with a hard limit and parsed here, so
//! every refusal — malformed JSON, a field out of range, too large — comes
//! back as the one JSON error shape before anything changes.

use axum::body::Body;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{ApiError, ErrorBody, ErrorKind};
use crate::controller::{Controller, CoreEvent};
use crate::ticket::{MAX_PAYLOAD_BYTES, NewTicket, TenantId, TicketId, TicketState};

/// Room for the envelope around a maximal payload.
pub const MAX_BODY_BYTES: usize = MAX_PAYLOAD_BYTES + 64 * 1024;

/// The API token. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl ApiToken {
    pub fn new(token: impl Into<String>) -> Result<Self, ApiError> {
        let token = token.into();
        if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ApiError::new(
                ErrorKind::Invalid,
                "an API token must be at least 16 printable characters",
            )
            .field("OSHAL_API_TOKEN")
            .limit(16));
        }
        Ok(Self(token.into()))
    }

    /// A fresh random token (256 bits, hex).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        Self(crate::text::hex(&bytes).into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn matches(&self, presented: &str) -> bool {
        constant_time_eq::constant_time_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

#[derive(Clone)]
struct AppState {
    controller: Controller,
    security: Option<crate::security::SecurityCenter>,
    token: ApiToken,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ErrorBody { error: self })).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router with every route and the auth gate, and the web UI from
/// `ui_dir` at `/` if given (static files, no secrets in them: the page asks
/// for the token and sends it as a bearer header like any other client).
pub fn router_with_ui(
    controller: Controller,
    security: Option<crate::security::SecurityCenter>,
    token: ApiToken,
    ui_dir: Option<&std::path::Path>,
) -> Router {
    let Some(dir) = ui_dir else {
        return router(controller, security, token);
    };
    let files = tower_http::services::ServeDir::new(dir)
        .fallback(tower_http::services::ServeFile::new(dir.join("index.html")));
    let ui = Router::new().fallback_service(files).layer(
        tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            header::HeaderValue::from_static(CSP),
        ),
    );
    routes(AppState {
        controller,
        security,
        token,
    })
    .route("/api/{*rest}", axum::routing::any(no_such_route))
    .merge(ui)
}

/// The UI's content security policy: its own scripts only, no eval, API
/// calls and the event socket to this origin only. Styles may be inline
/// (the diagram library positions nodes with style attributes).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// The router with every route and the auth gate.
pub fn router(
    controller: Controller,
    security: Option<crate::security::SecurityCenter>,
    token: ApiToken,
) -> Router {
    routes(AppState {
        controller,
        security,
        token,
    })
    .fallback(no_such_route)
}

async fn no_such_route() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such route")
}

fn routes(state: AppState) -> Router {
    let protected = Router::new()
        .route("/api/v1/tickets", post(submit).get(list))
        .route("/api/v1/tickets/counts", get(counts))
        .route("/api/v1/tickets/bulk", post(bulk))
        .route("/api/v1/tickets/batch", post(batch))
        .route("/api/v1/tickets/{id}", get(ticket))
        .route("/api/v1/tickets/{id}/cancel", post(cancel))
        .route("/api/v1/tickets/{id}/approve", post(approve))
        .route("/api/v1/bots", get(bots))
        .route("/api/v1/cost/summary", get(cost_summary))
        .route("/api/v1/tenants", get(tenants))
        .route("/api/v1/tenants/{id}", put(set_budget))
        .route("/api/v1/events", get(events))
        .route("/api/v1/connectors", get(connectors_list))
        .route(
            "/api/v1/connectors/{id}/credential",
            put(connector_credential),
        )
        .route("/api/v1/catalog", get(catalog))
        .route("/api/v1/catalog/import", post(catalog_import))
        .route("/api/v1/catalog/{id}/approve", post(catalog_approve))
        .route(
            "/api/v1/grants",
            get(grants_list)
                .post(grants_add)
                .delete(grants_revoke_by_query),
        )
        .route("/api/v1/grants/{id}", axum::routing::delete(grants_revoke))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/integrations", get(integrations))
        .route("/api/v1/effects", get(effects))
        .route("/api/v1/security/scans", post(security_scan))
        .route("/api/v1/security/findings", get(security_findings))
        .route(
            "/api/v1/security/findings/{id}/suppress",
            post(security_suppress),
        )
        .route("/api/v1/security/controls", get(security_controls))
        .route(
            "/api/v1/security/sarif",
            get(security_sarif_export).post(security_sarif_import),
        )
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    Router::new()
        .route("/api/v1/health", get(health))
        .merge(protected)
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` fires.
pub async fn serve(
    controller: Controller,
    security: Option<crate::security::SecurityCenter>,
    listener: tokio::net::TcpListener,
    token: ApiToken,
    ui_dir: Option<&std::path::Path>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router_with_ui(controller, security, token, ui_dir),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

/// The auth gate: a bearer token on every request (a `token` query
/// parameter is accepted for the event stream, which browsers cannot give
/// headers).
async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let presented = match header {
        Some(h) => h.strip_prefix("Bearer ").map(str::trim),
        None if request.uri().path() == "/api/v1/events" => request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token="))),
        None => None,
    };
    match presented {
        None => ApiError::new(
            ErrorKind::Unauthorized,
            "missing credentials: send Authorization: Bearer <token>",
        )
        .into_response(),
        Some(t) if !state.token.matches(t) => {
            ApiError::new(ErrorKind::Unauthorized, "invalid API token").into_response()
        }
        Some(_) => next.run(request).await,
    }
}

/// Reads a body up to `MAX_BODY_BYTES` and parses it as JSON, telling
/// malformed input (400) from well-formed input with wrong fields (422).
async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<T> {
    let bytes = read_limited(body, headers, MAX_BODY_BYTES).await?;
    let malformed = |e: &serde_json::Error| {
        ApiError::new(
            ErrorKind::Malformed,
            format!("request body is not valid JSON: {e}"),
        )
        .field("body")
    };
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::new(ErrorKind::Invalid, format!("request body: {inner}")).field(
                    crate::text::field_path(&e.path().to_string(), &inner.to_string()),
                )
            }
            _ => malformed(inner),
        }
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

/// Most of an oversized body read (and thrown away) so the client, still
/// sending, receives the 413 instead of a reset connection; past this the
/// connection is simply closed.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// Reads a body of at most `limit` bytes (the declared length is checked
/// first).
async fn read_limited(body: Body, headers: &HeaderMap, limit: usize) -> ApiResult<Vec<u8>> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0u64;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let over = |n: u64| n > limit as u64;
    let drain_limit = DRAIN_LIMIT.max(limit as u64 + 1024 * 1024);
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorKind::Malformed,
                    "request body took too long to arrive",
                )
                .field("body"));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(
                    ApiError::new(ErrorKind::Malformed, format!("request body: {e}")).field("body"),
                );
            }
            Ok(Some(Ok(c))) => c,
        };
        total += chunk.len() as u64;
        if total > drain_limit {
            break;
        }
        if !over(total) && !declared.is_some_and(over) {
            buf.extend_from_slice(&chunk);
        }
    }
    if over(total) || declared.is_some_and(over) {
        return Err(too_large(total.max(declared.unwrap_or(0)), limit));
    }
    Ok(buf)
}

fn too_large(len: u64, limit: usize) -> ApiError {
    ApiError::new(
        ErrorKind::TooLarge,
        format!("request body is {len} bytes; the limit is {limit} bytes"),
    )
    .field("body")
    .limit(limit as u64)
}

fn ticket_id(raw: &str) -> ApiResult<TicketId> {
    TicketId::parse(raw)
        .map_err(|_| ApiError::new(ErrorKind::NotFound, format!("no ticket has id {raw:?}")))
}

async fn health(State(state): State<AppState>) -> Response {
    let health = state.controller.health().await;
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

async fn counts(State(state): State<AppState>) -> ApiResult<Json<Vec<super::StateCount>>> {
    Ok(Json(super::state_counts(&state.controller).await?))
}

async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let new: NewTicket = json_body(&headers, body).await?;
    let submitted = state.controller.submit(new).await?;
    let status = if submitted.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(submitted)).into_response())
}

async fn list(
    State(state): State<AppState>,
    Query(filter): Query<super::TicketFilter>,
) -> ApiResult<Response> {
    Ok(Json(state.controller.tickets(&filter.query()?).await?).into_response())
}

async fn bulk(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<super::BulkReport>> {
    let request: super::BulkRequest = json_body(&headers, body).await?;
    Ok(Json(super::bulk(&state.controller, &request).await?))
}

async fn batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<super::BatchReport>> {
    let request: super::BatchSubmit = json_body(&headers, body).await?;
    Ok(Json(super::submit_batch(&state.controller, request).await?))
}

async fn ticket(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.controller.ticket(ticket_id(&id)?).await?).into_response())
}

async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.controller.cancel(ticket_id(&id)?).await?).into_response())
}

async fn approve(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(Json(state.controller.approve(ticket_id(&id)?).await?).into_response())
}

async fn bots(State(state): State<AppState>) -> Response {
    Json(state.controller.bots().await).into_response()
}

async fn cost_summary(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(state.controller.cost_summary().await?).into_response())
}

async fn tenants(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(state.controller.tenants().await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetBody {
    /// Dollars; `null` removes the limit.
    budget_usd: Option<f64>,
}

async fn set_budget(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = TenantId::parse(&id)?;
    let body: BudgetBody = json_body(&headers, body).await?;
    let budget_nusd = match body.budget_usd {
        None => None,
        Some(usd) if usd.is_finite() && (0.0..=1e9).contains(&usd) => {
            Some((usd * crate::cost::NANOS_PER_USD as f64).round() as i64)
        }
        Some(usd) => {
            return Err(ApiError::new(
                ErrorKind::Invalid,
                format!("{usd} is outside 0..=1000000000 USD"),
            )
            .field("budget_usd"));
        }
    };
    Ok(Json(state.controller.set_budget(tenant, budget_nusd).await?).into_response())
}

async fn events(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let controller = state.controller.clone();
    ws.on_upgrade(move |socket| stream_events(socket, controller))
}

/// Forwards `CoreEvent`s to one WebSocket until either side goes away. A
/// slow client gets a `lagged` event instead of stalling the controller.
async fn stream_events(mut socket: WebSocket, controller: Controller) {
    let mut rx = controller.subscribe();
    loop {
        tokio::select! {
            biased;
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            event = rx.recv() => {
                let event = match event {
                    Ok(e) => e,
                    Err(RecvError::Lagged(missed)) => CoreEvent::Lagged { missed },
                    Err(RecvError::Closed) => return,
                };
                let Ok(text) = serde_json::to_string(&event) else { continue };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Prometheus text exposition of the controller's counters and gauges.
async fn metrics(State(state): State<AppState>) -> Response {
    let c = &state.controller;
    let s = c.stats();
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let counters = [
        (
            "oshal_tickets_submitted_total",
            "Tickets accepted.",
            &s.submitted,
        ),
        (
            "oshal_tickets_refused_total",
            "Submissions refused at admission.",
            &s.refused,
        ),
        (
            "oshal_transitions_total",
            "Ticket transitions made durable.",
            &s.transitions,
        ),
        ("oshal_store_commits_total", "Group commits.", &s.commits),
        (
            "oshal_store_committed_rows_total",
            "Rows written by group commits.",
            &s.committed_rows,
        ),
        (
            "oshal_ledger_rows_total",
            "Attempts priced.",
            &s.ledger_rows,
        ),
    ];
    for (name, help, counter) in counters {
        metric(
            name,
            "counter",
            help,
            &[(String::new(), counter.load(Ordering::Relaxed) as f64)],
        );
    }
    metric(
        "oshal_cost_usd_total",
        "counter",
        "Dollars captured in the ledger by this process.",
        &[(
            String::new(),
            crate::cost::usd(s.cost_nusd.load(Ordering::Relaxed) as i64),
        )],
    );
    metric(
        "oshal_tokens_total",
        "counter",
        "Model tokens used.",
        &[
            (
                "{direction=\"input\"}".into(),
                s.input_tokens.load(Ordering::Relaxed) as f64,
            ),
            (
                "{direction=\"output\"}".into(),
                s.output_tokens.load(Ordering::Relaxed) as f64,
            ),
        ],
    );
    if let Ok(counts) = c.state_counts().await {
        let samples: Vec<_> = TicketState::ALL
            .iter()
            .map(|st| {
                let n = counts.iter().find(|(s, _)| s == st).map_or(0, |(_, n)| *n);
                (format!("{{state=\"{st}\"}}"), n as f64)
            })
            .collect();
        metric("oshal_tickets", "gauge", "Tickets by state.", &samples);
    }
    let bots = c.bots().await;
    let per_bot = |f: &dyn Fn(&crate::controller::BotView) -> f64| -> Vec<(String, f64)> {
        bots.iter()
            .map(|b| (format!("{{bot=\"{}\"}}", b.id), f(b)))
            .collect()
    };
    metric(
        "oshal_lane_depth",
        "gauge",
        "Entries waiting in a bot's lane.",
        &per_bot(&|b| f64::from(b.lane.depth)),
    );
    metric(
        "oshal_lane_pending",
        "gauge",
        "Entries delivered and not yet acknowledged.",
        &per_bot(&|b| f64::from(b.lane.pending)),
    );
    metric(
        "oshal_bot_in_flight",
        "gauge",
        "Tickets routed to a bot and not finished.",
        &per_bot(&|b| f64::from(b.in_flight)),
    );
    metric(
        "oshal_bot_succeeded_total",
        "counter",
        "Tickets a bot finished.",
        &per_bot(&|b| b.succeeded as f64),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

// ---- connectors -------------------------------------------------------------

/// Who an operator action is recorded as: the holder of the API token.
const OPERATOR: &str = "operator";

fn connectors(state: &AppState) -> ApiResult<crate::connector::Connectors> {
    state.controller.connectors().cloned().ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            "this controller has no connectors (they run with a local bot pool)",
        )
    })
}

async fn connectors_list(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<crate::connector::ConnectorView>>> {
    Ok(Json(connectors(&state)?.list()))
}

async fn catalog(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<crate::connector::ConnectorView>>> {
    Ok(Json(connectors(&state)?.catalog()))
}

async fn catalog_import(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<crate::connector::ConnectorView>)> {
    let doc: serde_json::Value = json_body(&headers, body).await?;
    let view = connectors(&state)?.import_openapi(&doc, OPERATOR).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

async fn catalog_approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<crate::connector::ConnectorView>> {
    Ok(Json(connectors(&state)?.approve(&id, OPERATOR).await?))
}

/// Stores a connector's credential in the broker's backend. Write-only: no
/// route ever answers with a credential.
async fn connector_credential(
    State(state): State<AppState>,
    Path(id): Path<String>,
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

#[derive(Debug, serde::Deserialize)]
struct GrantQuery {
    bot: Option<String>,
    id: Option<String>,
}

async fn grants_list(
    State(state): State<AppState>,
    Query(q): Query<GrantQuery>,
) -> ApiResult<Json<Vec<crate::connector::store::Grant>>> {
    Ok(Json(connectors(&state)?.grants(q.bot.as_deref()).await?))
}

async fn grants_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<crate::connector::store::Grant>)> {
    let new: crate::connector::NewGrant = json_body(&headers, body).await?;
    let grant = connectors(&state)?.grant(new, OPERATOR).await?;
    Ok((StatusCode::CREATED, Json(grant)))
}

async fn grants_revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    connectors(&state)?.revoke_grant(&id, OPERATOR).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn grants_revoke_by_query(
    State(state): State<AppState>,
    Query(q): Query<GrantQuery>,
) -> ApiResult<StatusCode> {
    let id = q.id.ok_or_else(|| {
        ApiError::new(ErrorKind::Invalid, "name the grant: ?id=<grant id>").field("id")
    })?;
    connectors(&state)?.revoke_grant(&id, OPERATOR).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, serde::Deserialize)]
struct TrailQuery {
    ticket: Option<String>,
    limit: Option<String>,
}

impl TrailQuery {
    fn parse(&self) -> ApiResult<(Option<crate::ticket::TicketId>, u32)> {
        let ticket = self
            .ticket
            .as_deref()
            .map(crate::ticket::TicketId::parse)
            .transpose()
            .map_err(|e| ApiError::from(e).field("ticket"))?;
        let limit = match self.limit.as_deref() {
            None => 200,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=5000).contains(n))
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorKind::Invalid,
                        format!("limit {l:?} is outside 1..=5000"),
                    )
                    .field("limit")
                    .limit(5000)
                })?,
        };
        Ok((ticket, limit))
    }
}

async fn audit(
    State(state): State<AppState>,
    Query(q): Query<TrailQuery>,
) -> ApiResult<Json<Vec<crate::connector::store::AuditEntry>>> {
    let (ticket, limit) = q.parse()?;
    Ok(Json(connectors(&state)?.audit(ticket, limit).await?))
}

async fn effects(
    State(state): State<AppState>,
    Query(q): Query<TrailQuery>,
) -> ApiResult<Json<Vec<crate::connector::store::EffectRow>>> {
    let (ticket, limit) = q.parse()?;
    Ok(Json(connectors(&state)?.effects(ticket, limit).await?))
}

/// The integration view's snapshot (the last 200 audit rows and effects).
async fn integrations(
    State(state): State<AppState>,
) -> ApiResult<Json<crate::connector::IntegrationView>> {
    Ok(Json(connectors(&state)?.integration(200).await?))
}

// ---- security center ---------------------------------------------------------

fn security(state: &AppState) -> ApiResult<crate::security::SecurityCenter> {
    state.security.clone().ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            "this controller runs no Security Center",
        )
    })
}

async fn security_scan(
    State(state): State<AppState>,
) -> ApiResult<Json<crate::security::ScanReport>> {
    Ok(Json(security(&state)?.scan().await?))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingsParams {
    state: Option<String>,
    source: Option<String>,
    limit: Option<String>,
}

async fn security_findings(
    State(state): State<AppState>,
    Query(p): Query<FindingsParams>,
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
    let query = FindingQuery {
        state: finding_state,
        source: p.source,
        limit,
    };
    Ok(Json(security(&state)?.findings(&query).await?))
}

async fn security_suppress(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<crate::security::Finding>> {
    let request: crate::security::SuppressRequest = json_body(&headers, body).await?;
    Ok(Json(
        security(&state)?.suppress(&id, &request, OPERATOR).await?,
    ))
}

async fn security_controls(
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<crate::security::ControlView>>> {
    Ok(Json(security(&state)?.controls().await?))
}

async fn security_sarif_export(State(state): State<AppState>) -> ApiResult<Response> {
    let log = security(&state)?.export_sarif().await?;
    Ok((
        [(header::CONTENT_TYPE, "application/sarif+json")],
        Json(log),
    )
        .into_response())
}

async fn security_sarif_import(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Vec<crate::security::ScanReport>>> {
    let center = security(&state)?;
    let bytes = read_limited(body, &headers, crate::security::sarif::MAX_SARIF_BYTES).await?;
    Ok(Json(center.import_sarif(&bytes).await?))
}
