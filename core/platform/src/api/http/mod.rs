//! The HTTP and WebSocket API (axum), the edge of every remote surface.
//!
//! Every route is mounted from the route table ([`crate::api::routes`]) by
//! [`mount`], which puts each behind the auth gate or not as its row says
//! and checks that every row is mounted exactly once. One file per concern:
//! `auth.rs` (the token gate), `body.rs` (reading and parsing bodies, with
//! their limits), `extract.rs` (query and path parameters, and the one
//! error shape for every refusal, axum's own included), and the handlers by domain: `tickets.rs`, `fleet.rs`
//! (bots, cost, tenants, events, metrics), `connectors.rs`, `security.rs`,
//! `tokens.rs` (who a token is; tenant tokens made and revoked),
//! `trading.rs` (the desk's paper sessions), `workflows.rs` (workflow runs),
//! `ops.rs` (the operations loop's webhooks, alerts and incidents).
//! Errors map to the one JSON shape in one place: `From<…> for ApiError`
//! in `api/mod.rs`, and `IntoResponse for ApiError` here.

mod auth;
mod body;
mod connectors;
mod extract;
mod fleet;
mod mesh;
mod ops;
mod security;
mod tickets;
mod tls;
mod tokens;
mod trading;
pub mod ui;
mod workflows;

use axum::handler::Handler;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

pub use auth::ApiToken;
pub use body::MAX_BODY_BYTES;

use super::routes::{self as r, Auth, Endpoint, Route};
use super::{ApiError, ErrorBody, ErrorKind};
use crate::controller::Controller;
use crate::trading::Trading;
use crate::workflow::Workflows;

/// The domains' adapters a server answers for; a route of one it lacks
/// answers 404.
#[derive(Debug, Clone, Default)]
pub struct Domains {
    pub trading: Option<Trading>,
    pub workflows: Option<Workflows>,
    pub ops: Option<crate::ops::Operations>,
    pub mesh: Option<crate::mesh::Mesh>,
}

#[derive(Clone)]
struct AppState {
    controller: Controller,
    security: Option<crate::security::SecurityCenter>,
    trading: Option<Trading>,
    workflows: Option<Workflows>,
    ops: Option<crate::ops::Operations>,
    mesh: Option<crate::mesh::Mesh>,
    token: ApiToken,
    tokens: std::sync::Arc<crate::api::tokens::TokenDirectory>,
    gate: std::sync::Arc<auth::GateCounters>,
}

impl AppState {
    fn new(
        controller: Controller,
        security: Option<crate::security::SecurityCenter>,
        domains: Domains,
        token: ApiToken,
    ) -> Self {
        let tokens = crate::api::tokens::TokenDirectory::new(
            controller.store().clone(),
            controller.clock().clone(),
        );
        Self {
            controller,
            security,
            trading: domains.trading,
            workflows: domains.workflows,
            ops: domains.ops,
            mesh: domains.mesh,
            token,
            tokens: std::sync::Arc::new(tokens),
            gate: std::sync::Arc::default(),
        }
    }
}

/// Who an operator action is recorded as: the holder of the API token.
const OPERATOR: &str = "operator";

/// Who an action on a domain's object (a session, a run) is recorded as.
fn actor(who: &crate::api::tokens::Principal) -> String {
    match who {
        crate::api::tokens::Principal::Operator => OPERATOR.to_owned(),
        crate::api::tokens::Principal::Tenant { tenant, .. } => format!("tenant {tenant}"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(ErrorBody { error: self })).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The router with every route and the auth gate, and the web UI at `/`:
/// from `ui_dir` if given, else the one built into this binary, if it was
/// (static files, no secrets in them: the page asks for the token and sends
/// it as a bearer header like any other client).
pub fn router_with_ui(
    controller: Controller,
    security: Option<crate::security::SecurityCenter>,
    domains: Domains,
    token: ApiToken,
    ui_dir: Option<&std::path::Path>,
) -> Router {
    let ui = match ui_dir {
        Some(dir) => Router::new().fallback_service(
            tower_http::services::ServeDir::new(dir)
                .fallback(tower_http::services::ServeFile::new(dir.join("index.html"))),
        ),
        None if ui::built_in() => Router::new().fallback(ui::built),
        None => return router(controller, security, domains, token),
    };
    let ui = ui.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    ));
    routes(AppState::new(controller, security, domains, token))
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
    domains: Domains,
    token: ApiToken,
) -> Router {
    routes(AppState::new(controller, security, domains, token)).fallback(no_such_route)
}

async fn no_such_route() -> ApiError {
    ApiError::new(ErrorKind::NotFound, "no such route")
}

/// The routes being mounted: each endpoint goes behind the auth gate or
/// not, as its row of the table says.
struct Mount {
    public: Router<AppState>,
    gated: Router<AppState>,
    mounted: Vec<Route>,
}

impl Mount {
    fn at<E: Endpoint, H: Handler<T, AppState>, T: 'static>(mut self, handler: H) -> Self {
        let route = E::ROUTE;
        let filter = match route.verb {
            r::Verb::Get => axum::routing::MethodFilter::GET,
            r::Verb::Post => axum::routing::MethodFilter::POST,
            r::Verb::Put => axum::routing::MethodFilter::PUT,
            r::Verb::Delete => axum::routing::MethodFilter::DELETE,
        };
        let method = axum::routing::on(filter, handler);
        match route.auth {
            Auth::Public => self.public = self.public.route(route.path, method),
            Auth::Bearer | Auth::BearerOrQuery => {
                self.gated = self.gated.route(route.path, method);
            }
        }
        self.mounted.push(route);
        self
    }
}

/// Every row of the route table with its handler.
fn mount() -> Mount {
    use r::*;
    Mount {
        public: Router::new(),
        gated: Router::new(),
        mounted: Vec::new(),
    }
    .at::<GetHealth, _, _>(tickets::health)
    .at::<GetOpenApi, _, _>(openapi)
    .at::<SubmitTicket, _, _>(tickets::submit)
    .at::<ListTickets, _, _>(tickets::list)
    .at::<CountTickets, _, _>(tickets::counts)
    .at::<BulkTickets, _, _>(tickets::bulk)
    .at::<ClearTickets, _, _>(tickets::clear)
    .at::<BatchTickets, _, _>(tickets::batch)
    .at::<GetTicket, _, _>(tickets::ticket)
    .at::<CancelTicket, _, _>(tickets::cancel)
    .at::<ApproveTicket, _, _>(tickets::approve)
    .at::<ListBots, _, _>(fleet::bots)
    .at::<DrainBot, _, _>(fleet::drain_bot)
    .at::<UncordonBot, _, _>(fleet::uncordon_bot)
    .at::<DrainNode, _, _>(fleet::drain_node)
    .at::<UncordonNode, _, _>(fleet::uncordon_node)
    .at::<RestartNode, _, _>(fleet::restart_node)
    .at::<GetCostSummary, _, _>(fleet::cost_summary)
    .at::<ListTenants, _, _>(fleet::tenants)
    .at::<SetBudget, _, _>(fleet::set_budget)
    .at::<PauseTenant, _, _>(fleet::pause_tenant)
    .at::<ResumeTenant, _, _>(fleet::resume_tenant)
    .at::<Events, _, _>(fleet::events)
    .at::<Metrics, _, _>(fleet::metrics)
    .at::<ListConnectors, _, _>(connectors::connectors_list)
    .at::<PutCredential, _, _>(connectors::connector_credential)
    .at::<ListCatalog, _, _>(connectors::catalog)
    .at::<ImportCatalog, _, _>(connectors::catalog_import)
    .at::<ApproveCatalog, _, _>(connectors::catalog_approve)
    .at::<ListGrants, _, _>(connectors::grants_list)
    .at::<AddGrant, _, _>(connectors::grants_add)
    .at::<RevokeGrantByQuery, _, _>(connectors::grants_revoke_by_query)
    .at::<RevokeGrant, _, _>(connectors::grants_revoke)
    .at::<ListAudit, _, _>(connectors::audit)
    .at::<GetIntegrations, _, _>(connectors::integrations)
    .at::<ListEffects, _, _>(connectors::effects)
    .at::<RunScan, _, _>(security::security_scan)
    .at::<ListFindings, _, _>(security::security_findings)
    .at::<SuppressFinding, _, _>(security::security_suppress)
    .at::<ListControls, _, _>(security::security_controls)
    .at::<ExportSarif, _, _>(security::security_sarif_export)
    .at::<ImportSarif, _, _>(security::security_sarif_import)
    .at::<WhoAmI, _, _>(tokens::whoami)
    .at::<CreateToken, _, _>(tokens::create)
    .at::<ListTokens, _, _>(tokens::list)
    .at::<RevokeToken, _, _>(tokens::revoke)
    .at::<OpenSession, _, _>(trading::open)
    .at::<ListSessions, _, _>(trading::list)
    .at::<GetSession, _, _>(trading::session)
    .at::<GetBlotter, _, _>(trading::blotter)
    .at::<GetRecap, _, _>(trading::recap)
    .at::<KillSession, _, _>(trading::kill)
    .at::<SetSessionState, _, _>(trading::set_state)
    .at::<ListOrders, _, _>(trading::orders)
    .at::<CloseSession, _, _>(trading::close)
    .at::<AlertmanagerWebhook, _, _>(ops::alertmanager)
    .at::<PagerDutyEvent, _, _>(ops::pagerduty)
    .at::<ListAlerts, _, _>(ops::alerts)
    .at::<AcknowledgeAlert, _, _>(ops::acknowledge)
    .at::<ListIncidents, _, _>(ops::incidents)
    .at::<GetIncident, _, _>(ops::incident)
    .at::<InvestigateIncident, _, _>(ops::investigate_incident)
    .at::<ChangeIncident, _, _>(ops::move_incident)
    .at::<GetPostmortem, _, _>(ops::postmortem)
    .at::<EditPostmortem, _, _>(ops::edit_postmortem)
    .at::<PublishPostmortem, _, _>(ops::publish_postmortem)
    .at::<DecideHeal, _, _>(ops::decide_heal)
    .at::<GetOpsSettings, _, _>(ops::settings)
    .at::<SetOpsSettings, _, _>(ops::set_settings)
    .at::<AddSilence, _, _>(ops::silence)
    .at::<AddMaintenance, _, _>(ops::maintenance)
    .at::<RecordChange, _, _>(ops::change)
    .at::<ListChanges, _, _>(ops::changes)
    .at::<ValidateWorkflow, _, _>(workflows::validate)
    .at::<StartRun, _, _>(workflows::start)
    .at::<ListRuns, _, _>(workflows::list)
    .at::<GetRun, _, _>(workflows::run)
    .at::<GetRunHistory, _, _>(workflows::history)
    .at::<DecideApproval, _, _>(workflows::decide)
    .at::<RetryRun, _, _>(workflows::retry)
    .at::<StopRun, _, _>(workflows::stop)
    .at::<UpgradeRun, _, _>(workflows::upgrade)
    .at::<ListApprovals, _, _>(workflows::approvals)
    .at::<ListShapes, _, _>(workflows::shapes)
    .at::<GenerateWorkflow, _, _>(workflows::generate)
    .at::<PublishDefinition, _, _>(workflows::publish)
    .at::<ListDefinitions, _, _>(workflows::definitions)
    .at::<GetDefinition, _, _>(workflows::definition)
    .at::<CompareDefinition, _, _>(workflows::compare)
    .at::<GetMesh, _, _>(mesh::read)
    .at::<GetFlow, _, _>(fleet::flow)
    .at::<GetSeries, _, _>(fleet::series)
    .at::<StoreMeshKey, _, _>(mesh::store_key)
    .at::<EnrolNode, _, _>(mesh::enrol)
    .at::<CheckMeshPolicy, _, _>(mesh::check_policy)
    .at::<SetMeshPolicy, _, _>(mesh::set_policy)
}

fn routes(state: AppState) -> Router {
    let m = mount();
    m.gated
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::auth))
        .merge(m.public)
        .layer(middleware::from_fn(extract::one_error_shape))
        .with_state(state)
}

/// The contract, generated once per process.
async fn openapi() -> Response {
    static CONTRACT: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(crate::api::contract::openapi_json);
    (
        [(header::CONTENT_TYPE, "application/json")],
        CONTRACT.as_str(),
    )
        .into_response()
}

/// Serves the API on `listener` until `shutdown` fires.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    controller: Controller,
    security: Option<crate::security::SecurityCenter>,
    domains: Domains,
    listener: tokio::net::TcpListener,
    tls: Option<(crate::tls::TlsFiles, crate::tls::Loaded)>,
    edge: crate::tls::Edge,
    token: ApiToken,
    ui_dir: Option<&std::path::Path>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    edge.listening(
        listener.local_addr()?.to_string(),
        tls.as_ref().map(|(_, first)| first),
    );
    let app = router_with_ui(controller, security, domains, token, ui_dir);
    match tls {
        Some((files, first)) => tls::serve(app, listener, files, first, edge, shutdown).await,
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oshal_kernel::name::Named;

    /// A row added to the table and left unmounted (or mounted twice)
    /// would answer 404 (or panic at start): every row, once.
    #[test]
    fn every_row_of_the_table_is_mounted_once() {
        let mounted = mount().mounted;
        for row in r::ALL {
            let n = mounted.iter().filter(|m| *m == row).count();
            assert_eq!(n, 1, "{} {} mounted {n} times", row.verb.as_str(), row.path);
        }
        assert_eq!(mounted.len(), r::ALL.len());
    }
}
