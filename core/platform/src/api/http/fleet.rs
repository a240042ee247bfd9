//! Handlers of the fleet-wide routes: bots and their lanes (drain and
//! uncordon, of a bot or of a node's bots), cost, tenants
//! and budgets, the event stream (WebSocket) and the Prometheus metrics
//! (written by hand: a snapshot of state the controller already keeps).

use axum::body::Body;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use tokio::sync::broadcast::error::RecvError;

use super::body::json_body;
use super::extract::PathId;
use super::{ApiResult, AppState};
use crate::api::tokens::Principal;
use crate::api::{ApiError, BotHold, ErrorKind, NodeHold, NodeRestarted};
use crate::controller::{Controller, CoreEvent, Drained, NodeDrained, NodeRestart};
use crate::ticket::{TenantId, TicketState};
use oshal_kernel::name::Named;

pub(super) async fn bots(State(state): State<AppState>) -> Response {
    Json(state.controller.bots().await).into_response()
}

/// Drains a live bot (a repeat answers `changed: false`).
pub(super) async fn drain_bot(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(BotHold::drain(&state.controller, &id).await?).into_response())
}

/// Drains every live bot of a node (a repeat answers `changed: false`).
pub(super) async fn drain_node(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    crate::ticket::check_name("node", &id)?;
    let drained = state.controller.drain_node(&id).await?;
    let held = drained.held();
    let (bots, fresh) = match drained {
        NodeDrained::Drained { bots, fresh } => (bots, fresh),
        refused => return Err(refused_node(refused.refusal(&id))),
    };
    let mut requeued = Vec::new();
    for (_, d) in &bots {
        if let Drained::Drained { requeued: r, .. } = d {
            requeued.extend(r.iter().map(|t| t.to_string()));
        }
    }
    Ok(Json(NodeHold {
        node: id,
        cordoned: true,
        changed: fresh,
        bots: bots.iter().map(|(b, _)| b.to_string()).collect(),
        requeued,
        held,
    })
    .into_response())
}

/// A node's drain or restart refused, as its refusal says: 404 when no
/// such node is known, 409 otherwise.
fn refused_node(refusal: Option<(bool, String)>) -> ApiError {
    let (unknown, why) = refusal.unwrap_or_default();
    let kind = if unknown {
        ErrorKind::NotFound
    } else {
        ErrorKind::IllegalTransition
    };
    ApiError::new(kind, why)
}

/// Orders a node to restart; answered once the order is heard.
pub(super) async fn restart_node(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    crate::ticket::check_name("node", &id)?;
    match state.controller.restart_node(&id, None).await? {
        NodeRestart::Ordered { run, bots, held } => Ok(Json(NodeRestarted {
            node: id,
            run,
            bots: bots.iter().map(|b| b.to_string()).collect(),
            held,
        })
        .into_response()),
        refused => Err(refused_node(refused.refusal(&id))),
    }
}

/// Lets every drained bot of a node take work again (none drained
/// answers `changed: false`).
pub(super) async fn uncordon_node(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    crate::ticket::check_name("node", &id)?;
    let Some((was, held, lifted)) = state.controller.uncordon_node(&id).await? else {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("no node {id} is known to this controller"),
        ));
    };
    // Its registered bots, and those uncordoned before they register again.
    let bots = state
        .controller
        .bots()
        .await
        .into_iter()
        .filter(|b| b.node.as_deref() == Some(id.as_str()))
        .map(|b| b.id.to_string())
        .chain(lifted.iter().map(ToString::to_string))
        .collect();
    Ok(Json(NodeHold {
        node: id,
        cordoned: false,
        changed: was > 0,
        bots,
        requeued: Vec::new(),
        held,
    })
    .into_response())
}

/// Lets a drained bot take work again (a bot not drained answers
/// `changed: false`).
pub(super) async fn uncordon_bot(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    Ok(Json(BotHold::uncordon(&state.controller, &id).await?).into_response())
}

pub(super) async fn cost_summary(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Response> {
    Ok(Json(state.controller.cost_summary_of(who.only()).await?).into_response())
}

/// The tenant directory, each with whether it is paused; a tenant's token
/// sees its own row (its budget, read only).
pub(super) async fn tenants(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Response> {
    let mut tenants = state.controller.tenants().await?;
    if let Some(own) = who.only() {
        tenants.retain(|t| &t.id == own);
    }
    let paused = state.controller.paused_tenants().await?;
    let tenants: Vec<super::super::TenantView> = tenants
        .into_iter()
        .map(|t| super::super::TenantView {
            paused: paused.contains(&t.id),
            id: t.id,
            budget_nusd: t.budget_nusd,
            created_at_ms: t.created_at_ms,
        })
        .collect();
    Ok(Json(tenants).into_response())
}

pub(super) async fn set_budget(
    State(state): State<AppState>,
    PathId(id): PathId,
    Extension(who): Extension<Principal>,
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
    let set = state
        .controller
        .set_budget(tenant.clone(), budget_nusd)
        .await?;
    if let Some(ops) = &state.ops {
        ops.budget_set(&tenant, budget_nusd, &super::actor(&who))
            .await;
    }
    Ok(Json(set).into_response())
}

pub(super) async fn pause_tenant(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    hold_tenant(&state, &id, true).await
}

pub(super) async fn resume_tenant(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> ApiResult<Response> {
    hold_tenant(&state, &id, false).await
}

/// Pauses or resumes a tenant for the operator.
async fn hold_tenant(state: &AppState, id: &str, paused: bool) -> ApiResult<Response> {
    let tenant = TenantId::parse(id)?;
    let done = state
        .controller
        .pause_tenant(&tenant, paused, "by the operator")
        .await?;
    Ok(Json(crate::api::TenantHold {
        tenant: done.tenant.to_string(),
        paused: done.paused,
        changed: done.changed,
    })
    .into_response())
}

pub(super) async fn events(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
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
    Ok(ws.on_upgrade(move |socket| stream_events(socket, controller, who)))
}

/// What of an event `who` may see: all of it for the operator; for a
/// tenant, its tickets' transitions and ledger rows (the fleet's bots are
/// the operator's), and nothing when none of it is the tenant's.
fn fenced(event: CoreEvent, who: &Principal) -> Option<CoreEvent> {
    let Some(own) = who.only() else {
        return Some(event);
    };
    match event {
        CoreEvent::TicketsTransitioned { mut transitions } => {
            transitions.retain(|t| &t.tenant == own);
            (!transitions.is_empty()).then_some(CoreEvent::TicketsTransitioned { transitions })
        }
        CoreEvent::CostCaptured { mut entries } => {
            entries.retain(|e| &e.tenant == own);
            (!entries.is_empty()).then_some(CoreEvent::CostCaptured { entries })
        }
        CoreEvent::TicketProgress { ref tenant, .. } => (tenant == own).then_some(event),
        CoreEvent::BotsUpdated { .. } | CoreEvent::BotsChanged { .. } => None,
        // How many events the socket missed counts every tenant's: a
        // tenant hears that it must resync, not how busy the others are.
        CoreEvent::Lagged { .. } => Some(CoreEvent::Lagged { missed: 0 }),
    }
}

/// How often a socket is pinged: a quiet fleet sends no event for long
/// stretches, and a proxy's idle timeout (nginx: 60 s) would close it, or
/// a peer gone without a word would hold its feed.
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(25);

/// Forwards `CoreEvent`s (those `who` may see) to one WebSocket until
/// either side goes away, the bots as what changed (`BotsChanged`, see
/// `controller::feed`), with a ping every [`KEEPALIVE`]. A slow client
/// gets a `lagged` event instead of stalling the controller.
pub(super) async fn stream_events(mut socket: WebSocket, controller: Controller, who: Principal) {
    let mut rx = controller.subscribe();
    let mut bots = crate::controller::feed::BotFeed::default();
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    loop {
        tokio::select! {
            biased;
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            _ = keepalive.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            event = rx.recv() => {
                let event = match event {
                    Ok(e) => e,
                    Err(RecvError::Lagged(missed)) => CoreEvent::Lagged { missed },
                    Err(RecvError::Closed) => return,
                };
                let Some(event) = fenced(event, &who) else { continue };
                for event in bots.next(event) {
                    let Ok(text) = serde_json::to_string(&event) else { continue };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// The flow counts through this API: the gate's decisions with the
/// controller's and the broker's counts.
pub(super) async fn flow(State(state): State<AppState>) -> Json<crate::controller::FlowCounts> {
    Json(state.controller.flow_counts(
        crate::controller::FlowSurface::Http,
        Some(state.gate.counts()),
    ))
}

/// The last two minutes as committed.
pub(super) async fn series(
    State(state): State<AppState>,
) -> Json<Vec<crate::controller::series::Second>> {
    Json(state.controller.recent_seconds())
}

/// Prometheus text exposition of the controller's counters and gauges; for
/// a tenant's token, its tenant's figures alone.
pub(super) async fn metrics(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> Response {
    if let Some(own) = who.only() {
        return tenant_metrics(&state.controller, own).await;
    }
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

/// One tenant's metrics: its tickets by state and its ledger's spend and
/// tokens, read from the store as that tenant (each sample labelled with
/// it); a figure that cannot be read has no sample.
async fn tenant_metrics(c: &Controller, tenant: &TenantId) -> Response {
    let mut out = String::with_capacity(1024);
    let label = format!("tenant=\"{tenant}\"");
    if let Ok(counts) = c.state_counts_of(Some(tenant)).await {
        let _ = writeln!(
            out,
            "# HELP oshal_tenant_tickets Tickets by state.\n# TYPE oshal_tenant_tickets gauge"
        );
        for st in TicketState::all() {
            let n = counts.iter().find(|(s, _)| s == st).map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "oshal_tenant_tickets{{{label},state=\"{st}\"}} {n}");
        }
    }
    if let Ok(cost) = c.cost_summary_of(Some(tenant)).await {
        let t = &cost.total;
        let _ = writeln!(
            out,
            "# HELP oshal_tenant_cost_usd Dollars in the ledger.\n# TYPE oshal_tenant_cost_usd gauge\n\
             oshal_tenant_cost_usd{{{label}}} {}\n\
             # HELP oshal_tenant_attempts Attempts priced.\n# TYPE oshal_tenant_attempts gauge\n\
             oshal_tenant_attempts{{{label}}} {}\n\
             # HELP oshal_tenant_tokens Model tokens in the ledger.\n# TYPE oshal_tenant_tokens gauge\n\
             oshal_tenant_tokens{{{label},direction=\"input\"}} {}\n\
             oshal_tenant_tokens{{{label},direction=\"output\"}} {}",
            crate::cost::usd(t.cost_nusd),
            t.attempts,
            t.input_tokens,
            t.output_tokens,
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TokenRole;
    use crate::ticket::TenantId;

    #[test]
    fn a_tenant_hears_a_lag_without_the_fleet_s_count() {
        let lag = || CoreEvent::Lagged { missed: 4_096 };
        assert_eq!(fenced(lag(), &Principal::Operator), Some(lag()));
        let tenant = Principal::Tenant {
            tenant: TenantId::parse("acme").unwrap(),
            role: TokenRole::Viewer,
        };
        assert_eq!(
            fenced(lag(), &tenant),
            Some(CoreEvent::Lagged { missed: 0 })
        );
        assert_eq!(
            fenced(CoreEvent::BotsUpdated { bots: Vec::new() }, &tenant),
            None
        );
        let changed = CoreEvent::BotsChanged {
            changed: Vec::new(),
            gone: Vec::new(),
        };
        assert_eq!(fenced(changed.clone(), &tenant), None);
        assert_eq!(fenced(changed.clone(), &Principal::Operator), Some(changed));
    }
}
