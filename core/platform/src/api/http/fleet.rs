//! Handlers of the fleet-wide routes: bots and their lanes, cost, tenants
//! and budgets, the event stream (WebSocket) and the Prometheus metrics
//! (written by hand: a snapshot of state the controller already keeps).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast::error::RecvError;

use super::body::json_body;
use super::extract::PathId;
use super::{ApiResult, AppState};
use crate::api::{ApiError, ErrorKind};
use crate::controller::{Controller, CoreEvent};
use crate::ticket::{TenantId, TicketState};
use oshal_kernel::name::Named;

pub(super) async fn bots(State(state): State<AppState>) -> Response {
    Json(state.controller.bots().await).into_response()
}

pub(super) async fn cost_summary(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(state.controller.cost_summary().await?).into_response())
}

pub(super) async fn tenants(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(state.controller.tenants().await?).into_response())
}

pub(super) async fn set_budget(
    State(state): State<AppState>,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let tenant = TenantId::parse(&id)?;
    let body: crate::api::BudgetBody = json_body(&headers, body).await?;
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

pub(super) async fn events(
    State(state): State<AppState>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = ws.map_err(|e| {
        ApiError::new(
            ErrorKind::Malformed,
            format!(
                "this route is a WebSocket: connect with `Connection: Upgrade` and `Upgrade: websocket` ({})",
                e.body_text()
            ),
        )
        .field("upgrade")
    })?;
    let controller = state.controller.clone();
    Ok(ws.on_upgrade(move |socket| stream_events(socket, controller)))
}

/// Forwards `CoreEvent`s to one WebSocket until either side goes away. A
/// slow client gets a `lagged` event instead of stalling the controller.
pub(super) async fn stream_events(mut socket: WebSocket, controller: Controller) {
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
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
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
        let samples: Vec<_> = TicketState::all()
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
    // A lane whose figures cannot be read has no sample (unknown), not 0.
    let per_lane = |f: &dyn Fn(&crate::lane::LaneStats) -> f64| -> Vec<(String, f64)> {
        bots.iter()
            .filter_map(|b| Some((format!("{{bot=\"{}\"}}", b.id), f(b.lane.as_ref()?))))
            .collect()
    };
    metric(
        "oshal_lane_known",
        "gauge",
        "1 if the lane's figures could be read, 0 if they are unknown (its store unreachable).",
        &per_bot(&|b| f64::from(u8::from(b.lane.is_some()))),
    );
    metric(
        "oshal_lane_depth",
        "gauge",
        "Entries waiting in a bot's lane, not yet delivered.",
        &per_lane(&|l| f64::from(l.depth)),
    );
    metric(
        "oshal_lane_pending",
        "gauge",
        "Entries delivered and not yet acknowledged.",
        &per_lane(&|l| f64::from(l.pending)),
    );
    metric(
        "oshal_lane_lag_seconds",
        "gauge",
        "How long the oldest waiting entry has waited.",
        &per_lane(&|l| l.lag_ms as f64 / 1000.0),
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
