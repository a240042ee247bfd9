//! The HTTP API's route table: each route's method, path, auth and types,
//! defined once.
//!
//! The server mounts its handlers by these rows (`http::mount`, which
//! checks that every row is mounted exactly once), the typed [`Client`]
//! builds its requests from them (`Client::request`), and a test checks the
//! browser's transport (`ui/src/lib/transport.ts`) against [`ALL`]. A route
//! string appears nowhere else in the platform or the command line. Start
//! with the `routes!` table at the bottom.
//!
//! [`Client`]: super::client::Client

use serde::{Serialize, de::DeserializeOwned};

use super::contract::{ContractType, Defs, QueryParams};

use super::{
    BatchReport, BatchSubmit, BotHold, BudgetBody, BulkReport, BulkRequest, FindingsQuery,
    GrantQuery, NodeHold, NodeRestarted, RevokeQuery, StateCount, TenantHold, TenantView,
    TicketFilter, TrailQuery,
};
use crate::connector::store::{AuditEntry, EffectRow, Grant};
use crate::connector::{ConnectorView, IntegrationView, NewGrant};
use crate::controller::{BotView, CoreEvent, Health, Submitted};
use crate::cost::CostSummary;
use crate::security::{ControlView, Finding, ScanReport, SuppressRequest};
use crate::store::{Tenant, TicketPage, TicketView};
use crate::ticket::NewTicket;

/// An HTTP method the API uses.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[strum(serialize_all = "UPPERCASE")]
pub enum Verb {
    Get,
    Post,
    Put,
    Delete,
}

impl Verb {
    /// The method as axum and reqwest (one `http` crate) know it.
    pub fn method(self) -> axum::http::Method {
        match self {
            Self::Get => axum::http::Method::GET,
            Self::Post => axum::http::Method::POST,
            Self::Put => axum::http::Method::PUT,
            Self::Delete => axum::http::Method::DELETE,
        }
    }
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No token (health alone).
    Public,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// Bearer, or `?token=`: a browser's WebSocket cannot set headers.
    BearerOrQuery,
}

/// Who may call a route once the gate has let the token in (deny by
/// default: a row names its access, and only the operator's token passes
/// `Operator`). A tenant token's reads and writes are fenced to its tenant
/// by the handler ([`super::tokens::Principal::only`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The server's own token only: the fleet's configuration (bots,
    /// budgets, connectors, grants, the Security Center, tokens).
    Operator,
    /// Any token; a tenant's sees its tenant's share.
    Read,
    /// The server's token, or a tenant token with the `operator` role, on
    /// its tenant's tickets.
    Write,
}

/// One row of the table, as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub name: &'static str,
    pub verb: Verb,
    /// axum's and OpenAPI's form: `/api/v1/tickets/{id}`.
    pub path: &'static str,
    pub auth: Auth,
    pub access: Access,
    /// The status of success: 200, 201, 204, or 101 for the WebSocket.
    pub ok: u16,
    /// The row's documentation, which the contract shows.
    pub doc: &'static str,
}

impl Route {
    /// How many `{…}` segments the path has.
    pub const fn params(&self) -> usize {
        let b = self.path.as_bytes();
        let (mut i, mut n) = (0, 0);
        while i < b.len() {
            if b[i] == b'{' {
                n += 1;
            }
            i += 1;
        }
        n
    }
}

/// One endpoint: a zero-sized type per row that carries the row's types.
pub trait Endpoint: Send + Sync + 'static {
    const ROUTE: Route;
    /// The values of the path's `{…}` segments, in order.
    type Args: PathArgs;
    /// Query parameters; `()` for none.
    type Query: Serialize + DeserializeOwned + Send + Sync + QueryParams;
    /// The JSON body; `()` for none.
    type Body: Serialize + DeserializeOwned + Send + Sync + ContractType;
    /// The reply; `()` for a 204.
    type Response: Serialize + DeserializeOwned + Send + ContractType;
}

/// The values a path's `{…}` segments take.
pub trait PathArgs: Send + Sync {
    const COUNT: usize;
    fn segments(&self) -> Vec<&str>;
}

impl PathArgs for () {
    const COUNT: usize = 0;
    fn segments(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// The one `{id}` of a path: a ticket, tenant, connector, grant or finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id(pub String);

impl PathArgs for Id {
    const COUNT: usize = 1;
    fn segments(&self) -> Vec<&str> {
        vec![&self.0]
    }
}

impl From<&str> for Id {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

impl From<&String> for Id {
    fn from(s: &String) -> Self {
        Self(s.clone())
    }
}

impl From<String> for Id {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<crate::ticket::TicketId> for Id {
    fn from(t: crate::ticket::TicketId) -> Self {
        Self(t.to_string())
    }
}

/// Every gated operation, as the Security Center probes it: each `{…}`
/// filled with an id nothing has, since the gate must refuse before the
/// handler ever looks.
pub fn surface() -> Vec<crate::security::platform::SurfaceRoute> {
    let probe = "00000000-0000-0000-0000-00000000beef";
    ALL.iter()
        .filter(|r| r.auth != Auth::Public)
        .map(|r| crate::security::platform::SurfaceRoute {
            method: <&str>::from(r.verb).to_owned(),
            path: r
                .path
                .split('/')
                .map(|seg| if seg.starts_with('{') { probe } else { seg })
                .collect::<Vec<_>>()
                .join("/"),
        })
        .collect()
}

macro_rules! routes {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident = $verb:ident $path:literal $auth:ident $access:ident,
            args: $args:ty, query: $query:ty, body: $body:ty => $resp:ty $(, $ok:literal)?;
    )*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl Endpoint for $name {
                const ROUTE: Route = Route {
                    name: stringify!($name),
                    verb: Verb::$verb,
                    path: $path,
                    auth: Auth::$auth,
                    access: Access::$access,
                    ok: routes!(@ok $($ok)?),
                    doc: concat!($($doc, "\n"),*),
                };
                type Args = $args;
                type Query = $query;
                type Body = $body;
                type Response = $resp;
            }

            const _: () = assert!(
                <$name as Endpoint>::ROUTE.params() == <$args as PathArgs>::COUNT,
                concat!(stringify!($name), ": its args do not match the path's parameters"),
            );
        )*

        /// Every row, in the table's order.
        pub const ALL: &[Route] = &[$(<$name as Endpoint>::ROUTE),*];

        /// Every row as an operation of the contract, in the table's order.
        pub fn operations(defs: &mut Defs) -> Vec<(Route, utoipa::openapi::path::Operation)> {
            vec![$(super::contract::operation::<$name>(defs)),*]
        }
    };
    (@ok) => { 200 };
    (@ok $ok:literal) => { $ok };
}

routes! {
    /// The controller's health: no token; 503 with the same body when the
    /// store is down.
    GetHealth = Get "/api/v1/health" Public Read, args: (), query: (), body: () => Health;
    /// This contract: OpenAPI 3.1, generated from the types the server speaks.
    GetOpenApi = Get "/api/v1/openapi.json" Bearer Read, args: (), query: (), body: () => serde_json::Value;

    /// Submit one ticket: 201, or 200 with `duplicate: true` for a repeated
    /// idempotency key.
    SubmitTicket = Post "/api/v1/tickets" Bearer Write, args: (), query: (), body: NewTicket => Submitted, 201;
    /// A page of tickets, newest first.
    ListTickets = Get "/api/v1/tickets" Bearer Read, args: (), query: TicketFilter, body: () => TicketPage;
    /// Clear a walk-through's tickets (its tag, `tour:<id>:`): the unfinished
    /// are cancelled, the ended removed where the store allows it (the
    /// embedded SQLite; a fleet's history is append-only and keeps them).
    ClearTickets = Delete "/api/v1/tickets" Bearer Write, args: (), query: crate::api::ClearQuery, body: () => crate::store::Cleared;
    /// Tickets per state, every state listed.
    CountTickets = Get "/api/v1/tickets/counts" Bearer Read, args: (), query: (), body: () => Vec<StateCount>;
    /// Cancel or retry every ticket a filter matches (a dry run only counts).
    BulkTickets = Post "/api/v1/tickets/bulk" Bearer Write, args: (), query: (), body: BulkRequest => BulkReport;
    /// Many tickets in one durable commit; the answers in request order.
    BatchTickets = Post "/api/v1/tickets/batch" Bearer Write, args: (), query: (), body: BatchSubmit => BatchReport;
    /// One ticket in full.
    GetTicket = Get "/api/v1/tickets/{id}" Bearer Read, args: Id, query: (), body: () => TicketView;
    /// Cancel a ticket (aborts a running model call).
    CancelTicket = Post "/api/v1/tickets/{id}/cancel" Bearer Write, args: Id, query: (), body: () => TicketView;
    /// Release a ticket held for approval.
    ApproveTicket = Post "/api/v1/tickets/{id}/approve" Bearer Write, args: Id, query: (), body: () => TicketView;
    /// Bots with their lanes and load.
    ListBots = Get "/api/v1/bots" Bearer Operator, args: (), query: (), body: () => Vec<BotView>;
    /// Drain a live bot: it finishes what it holds and is routed nothing
    /// more; the tickets waiting in its lane go to other bots.
    DrainBot = Post "/api/v1/bots/{id}/drain" Bearer Operator, args: Id, query: (), body: () => BotHold;
    /// Let a drained bot take work again.
    UncordonBot = Post "/api/v1/bots/{id}/uncordon" Bearer Operator, args: Id, query: (), body: () => BotHold;
    /// Drain every live bot of a node at once.
    ///
    /// Refused whole (409) if that would leave a skill no bot: each
    /// finishes what it holds and is routed nothing more; what waits in
    /// their lanes goes to other bots.
    DrainNode = Post "/api/v1/nodes/{id}/drain" Bearer Operator, args: Id, query: (), body: () => NodeHold;
    /// Let a drained node's bots take work again.
    UncordonNode = Post "/api/v1/nodes/{id}/uncordon" Bearer Operator, args: Id, query: (), body: () => NodeHold;
    /// Order a fleet node to restart.
    ///
    /// It stops as on SIGTERM (its bots abandon their calls; what they
    /// held goes back to the queue) and starts again under its name as a
    /// new run. Refused (409) for a node with no bot registered, one that
    /// does not hear the order, and the embedded pool (no node).
    RestartNode = Post "/api/v1/nodes/{id}/restart" Bearer Operator, args: Id, query: (), body: () => NodeRestarted;
    /// Spend in total and by bot, tenant, model and day.
    GetCostSummary = Get "/api/v1/cost/summary" Bearer Read, args: (), query: (), body: () => CostSummary;
    /// Tenants, their budgets, and whether each is paused.
    ListTenants = Get "/api/v1/tenants" Bearer Read, args: (), query: (), body: () => Vec<TenantView>;
    /// Set a tenant's budget in dollars (`null` lifts it).
    SetBudget = Put "/api/v1/tenants/{id}" Bearer Operator, args: Id, query: (), body: BudgetBody => Tenant;
    /// Pause a tenant: its tickets are admitted and kept, not routed,
    /// until it is resumed (kept across a restart).
    PauseTenant = Post "/api/v1/tenants/{id}/pause" Bearer Operator, args: Id, query: (), body: () => TenantHold;
    /// Resume a paused tenant: its kept tickets are routed again.
    ResumeTenant = Post "/api/v1/tenants/{id}/resume" Bearer Operator, args: Id, query: (), body: () => TenantHold;
    /// A WebSocket of `CoreEvent`s.
    Events = Get "/api/v1/events" BearerOrQuery Read, args: (), query: (), body: () => CoreEvent, 101;

    /// Every connector, curated and catalog.
    ListConnectors = Get "/api/v1/connectors" Bearer Operator, args: (), query: (), body: () => Vec<ConnectorView>;
    /// Store a connector's credential (write-only): 204.
    PutCredential = Put "/api/v1/connectors/{id}/credential" Bearer Operator, args: Id, query: (), body: serde_json::Value => (), 204;
    /// Imported catalog entries, approved or not.
    ListCatalog = Get "/api/v1/catalog" Bearer Operator, args: (), query: (), body: () => Vec<ConnectorView>;
    /// Import an OpenAPI 3 document as a disabled catalog entry: 201.
    ImportCatalog = Post "/api/v1/catalog/import" Bearer Operator, args: (), query: (), body: serde_json::Value => ConnectorView, 201;
    /// Approve a catalog entry, which enables it.
    ApproveCatalog = Post "/api/v1/catalog/{id}/approve" Bearer Operator, args: Id, query: (), body: () => ConnectorView;
    /// Live grants, optionally of one bot.
    ListGrants = Get "/api/v1/grants" Bearer Operator, args: (), query: GrantQuery, body: () => Vec<Grant>;
    /// Let a bot call operations of a connector: 201.
    AddGrant = Post "/api/v1/grants" Bearer Operator, args: (), query: (), body: NewGrant => Grant, 201;
    /// Revoke the grant named by `?id=`: 204.
    RevokeGrantByQuery = Delete "/api/v1/grants" Bearer Operator, args: (), query: RevokeQuery, body: () => (), 204;
    /// Revoke a grant: 204.
    RevokeGrant = Delete "/api/v1/grants/{id}" Bearer Operator, args: Id, query: (), body: () => (), 204;
    /// The audit trail.
    ListAudit = Get "/api/v1/audit" Bearer Read, args: (), query: TrailQuery, body: () => Vec<AuditEntry>;
    /// The integration view's snapshot.
    GetIntegrations = Get "/api/v1/integrations" Bearer Operator, args: (), query: (), body: () => IntegrationView;
    /// The effect ledger: every write sent to an outside system.
    ListEffects = Get "/api/v1/effects" Bearer Read, args: (), query: TrailQuery, body: () => Vec<EffectRow>;

    /// Run every check now.
    RunScan = Post "/api/v1/security/scans" Bearer Operator, args: (), query: (), body: () => ScanReport;
    /// Findings, worst first.
    ListFindings = Get "/api/v1/security/findings" Bearer Read, args: (), query: FindingsQuery, body: () => Vec<Finding>;
    /// Suppress a finding with a justification, for some days.
    SuppressFinding = Post "/api/v1/security/findings/{id}/suppress" Bearer Operator, args: Id, query: (), body: SuppressRequest => Finding;
    /// Each preventive control and the checks that prove it.
    ListControls = Get "/api/v1/security/controls" Bearer Operator, args: (), query: (), body: () => Vec<ControlView>;
    /// Every unresolved finding as SARIF 2.1.0 (`application/sarif+json`).
    ExportSarif = Get "/api/v1/security/sarif" Bearer Operator, args: (), query: (), body: () => serde_json::Value;
    /// A SARIF 2.1.0 log from another scanner (Trivy, Checkov, Semgrep…).
    ImportSarif = Post "/api/v1/security/sarif" Bearer Operator, args: (), query: (), body: serde_json::Value => Vec<ScanReport>;

    /// What the presented token is: the operator's, or a tenant's with its role.
    WhoAmI = Get "/api/v1/whoami" Bearer Read, args: (), query: (), body: () => crate::api::tokens::WhoAmI;
    /// Create a token bound to one tenant and a role; its value is shown
    /// this once: 201.
    CreateToken = Post "/api/v1/tokens" Bearer Operator, args: (), query: (), body: crate::api::tokens::NewToken => crate::api::tokens::IssuedToken, 201;
    /// Every tenant token, revoked ones too, without their values.
    ListTokens = Get "/api/v1/tokens" Bearer Operator, args: (), query: (), body: () => Vec<crate::api::tokens::TokenView>;
    /// Revoke a tenant token: 204.
    RevokeToken = Delete "/api/v1/tokens/{id}" Bearer Operator, args: Id, query: (), body: () => (), 204;

    /// Open a paper trading session: 201.
    OpenSession = Post "/api/v1/trading/sessions" Bearer Write, args: (), query: (), body: crate::trading::NewSession => crate::trading::SessionView, 201;
    ListSessions = Get "/api/v1/trading/sessions" Bearer Read, args: (), query: (), body: () => Vec<crate::trading::SessionView>;
    GetSession = Get "/api/v1/trading/sessions/{id}" Bearer Read, args: Id, query: (), body: () => crate::trading::SessionView;
    GetBlotter = Get "/api/v1/trading/sessions/{id}/blotter" Bearer Read, args: Id, query: (), body: () => crate::trading::Blotter;
    GetRecap = Get "/api/v1/trading/sessions/{id}/recap" Bearer Read, args: Id, query: (), body: () => crate::trading::RecapView;
    KillSession = Post "/api/v1/trading/sessions/{id}/kill" Bearer Write, args: Id, query: (), body: crate::trading::KillRequest => crate::trading::KillView;
    /// Close a running session: it stops where it is, for good.
    CloseSession = Post "/api/v1/trading/sessions/{id}/close" Bearer Write, args: Id, query: (), body: crate::trading::CloseRequest => crate::trading::SessionView;
    /// A session's orders (or one, `?order=O-3`) with their ledger postings.
    ListOrders = Get "/api/v1/trading/sessions/{id}/orders" Bearer Read, args: Id, query: crate::trading::OrdersQuery, body: () => Vec<crate::trading::OrderView>;
    /// Set the trading state of a session's desk, or of one bot's signals.
    SetSessionState = Post "/api/v1/trading/sessions/{id}/state" Bearer Write, args: Id, query: (), body: crate::trading::StateRequest => crate::trading::StateChangeView;

    /// Check a workflow spec (an object, or JSON or YAML text): its hash
    /// and DAG, or every refusal at the JSON path of its field.
    ValidateWorkflow = Post "/api/v1/workflows/validate" Bearer Read, args: (), query: (), body: crate::workflow::SpecSource => crate::workflow::Validation;
    /// Start a run of a spec, pinned to its hash: 201.
    StartRun = Post "/api/v1/workflows/runs" Bearer Write, args: (), query: (), body: crate::workflow::NewRun => crate::workflow::RunView, 201;
    /// Runs, newest first.
    ListRuns = Get "/api/v1/workflows/runs" Bearer Read, args: (), query: (), body: () => Vec<crate::workflow::RunSummary>;
    /// A run with its nodes, their phases, attempts, tickets and cost.
    GetRun = Get "/api/v1/workflows/runs/{id}" Bearer Read, args: Id, query: (), body: () => crate::workflow::RunView;
    /// A run's history, the events it is rebuilt from.
    GetRunHistory = Get "/api/v1/workflows/runs/{id}/history" Bearer Read, args: Id, query: (), body: () => Vec<crate::workflow::HistoryEntry>;
    /// Approve or deny a run's approval node, as its approver.
    DecideApproval = Post "/api/v1/workflows/runs/{id}/decide" Bearer Write, args: Id, query: (), body: crate::workflow::Decision => crate::workflow::RunView;
    /// Run a failed node again, and everything downstream of it.
    RetryRun = Post "/api/v1/workflows/runs/{id}/retry" Bearer Write, args: Id, query: (), body: crate::workflow::RetryRequest => crate::workflow::RunView;
    /// Show the diff of moving a run to a published version of its
    /// workflow (the latest if none is named); with `confirm`, move it.
    UpgradeRun = Post "/api/v1/workflows/runs/{id}/upgrade" Bearer Write, args: Id, query: (), body: crate::workflow::UpgradeRequest => crate::workflow::UpgradeView;
    /// Cancel or terminate a run; its tickets in flight are cancelled.
    StopRun = Post "/api/v1/workflows/runs/{id}/stop" Bearer Write, args: Id, query: (), body: crate::workflow::StopRequest => crate::workflow::RunView;
    /// Approvals waiting for a decision, soonest deadline first.
    ListApprovals = Get "/api/v1/workflows/approvals" Bearer Read, args: (), query: (), body: () => Vec<crate::workflow::PendingApproval>;
    /// Publish a spec as the next version of its name (201; `created`
    /// false if the latest version has its hash), with its diff.
    PublishDefinition = Post "/api/v1/workflows/definitions" Bearer Write, args: (), query: (), body: crate::workflow::NewDefinition => crate::workflow::DefinitionView, 201;
    /// The latest version of each published definition.
    ListDefinitions = Get "/api/v1/workflows/definitions" Bearer Read, args: (), query: (), body: () => Vec<crate::workflow::DefinitionView>;
    /// Every version of one definition, newest first, each with its diff.
    GetDefinition = Get "/api/v1/workflows/definitions/{id}" Bearer Read, args: Id, query: crate::workflow::DefinitionQuery, body: () => Vec<crate::workflow::DefinitionView>;
    /// Compare a candidate spec with the latest version of its name.
    CompareDefinition = Post "/api/v1/workflows/compare" Bearer Read, args: (), query: (), body: crate::workflow::NewDefinition => crate::workflow::DefinitionDiff;
    /// Ask a bot's model for a spec (a `chat` ticket whose reply is
    /// constrained to the spec's JSON Schema) and preview it: checked, and
    /// compared with the latest version of its name. Publishes nothing.
    GenerateWorkflow = Post "/api/v1/workflows/generate" Bearer Write, args: (), query: (), body: crate::workflow::GenerateRequest => crate::workflow::Generated;
    /// The shapes Oshal ships (build, support ticket, video), each checked here.
    ListShapes = Get "/api/v1/workflows/shapes" Bearer Read, args: (), query: (), body: () => Vec<crate::workflow::Shape>;

    /// Alerts from Prometheus Alertmanager (its webhook payload, version
    /// "4"): each alert taken, or refused at its path while the others are
    /// taken.
    AlertmanagerWebhook = Post "/api/v1/ops/alertmanager" Bearer Write, args: (), query: crate::ops::OpsQuery, body: serde_json::Value => crate::ops::Ingested;
    /// An event of PagerDuty's Events API v2 (trigger, acknowledge,
    /// resolve), answered as PagerDuty answers: 202.
    PagerDutyEvent = Post "/api/v1/ops/pagerduty" Bearer Write, args: (), query: crate::ops::OpsQuery, body: serde_json::Value => crate::ops::PagerDutyAck, 202;
    /// Alerts, newest report first, with their states and incidents.
    ListAlerts = Get "/api/v1/ops/alerts" Bearer Read, args: (), query: crate::ops::AlertsQuery, body: () => Vec<crate::ops::AlertRow>;
    /// Acknowledge a firing alert, by its fingerprint.
    AcknowledgeAlert = Post "/api/v1/ops/alerts/{id}/acknowledge" Bearer Write, args: Id, query: crate::ops::OpsQuery, body: () => oshal_ops::alert::Alert;
    /// Incidents, newest first.
    ListIncidents = Get "/api/v1/ops/incidents" Bearer Read, args: (), query: (), body: () => Vec<crate::ops::IncidentSummary>;
    /// An incident with its alerts, timeline, MTTA and MTTR.
    GetIncident = Get "/api/v1/ops/incidents/{id}" Bearer Read, args: Id, query: crate::ops::OpsQuery, body: () => crate::ops::IncidentView;
    /// Investigate an open incident again (capacity added, a prerequisite fixed, or to see how it stands now): a new Gather ticket, its evidence and diagnosis beside the earlier ones, and a heal proposed if a rule matches the new diagnosis and none of that rule was proposed before; 409 if the incident is not open or an investigation of it runs.
    InvestigateIncident = Post "/api/v1/ops/incidents/{id}/investigate" Bearer Write, args: Id, query: crate::ops::OpsQuery, body: () => crate::ops::IncidentView;
    /// Acknowledge, mitigate or resolve an incident.
    ChangeIncident = Post "/api/v1/ops/incidents/{id}/move" Bearer Write, args: Id, query: (), body: crate::ops::MoveIncident => crate::ops::IncidentView;
    /// An incident's postmortem: the published one, or the draft its record supports now (summary, impact, root causes with their evidence, trigger, detection, resolution, action items, lessons, timeline, MTTA, MTTR, each investigation's cost) with the edits laid over it.
    GetPostmortem = Get "/api/v1/ops/incidents/{id}/postmortem" Bearer Read, args: Id, query: crate::ops::OpsQuery, body: () => oshal_ops::report::Postmortem;
    /// Edit a postmortem's prose (the fields given replace the draft's); 409 once published.
    EditPostmortem = Put "/api/v1/ops/incidents/{id}/postmortem" Bearer Write, args: Id, query: crate::ops::OpsQuery, body: oshal_ops::report::PostmortemEdit => oshal_ops::report::Postmortem;
    /// Publish a resolved incident's postmortem, frozen from then on; 409 before it is resolved or once published.
    PublishPostmortem = Post "/api/v1/ops/incidents/{id}/postmortem/publish" Bearer Write, args: Id, query: crate::ops::OpsQuery, body: () => oshal_ops::report::Postmortem;
    /// Approve or deny an incident's pending heal (its dry run and blast radius are on the incident); the operator's token alone, as for any write to the platform's own state. Approved, its one write runs under one expiring grant bound to its ticket, then the incident is investigated again; 409 if it is not pending or its rule's concurrency is taken.
    DecideHeal = Post "/api/v1/ops/incidents/{id}/heal" Bearer Operator, args: Id, query: crate::ops::OpsQuery, body: crate::ops::HealDecision => crate::ops::IncidentView;
    /// The monitor's settings (fingerprint labels, correlation rules, heal rules), its
    /// silences, maintenance windows and newest change events.
    GetOpsSettings = Get "/api/v1/ops/settings" Bearer Read, args: (), query: crate::ops::OpsQuery, body: () => crate::ops::SettingsView;
    /// Replace the monitor's settings.
    SetOpsSettings = Put "/api/v1/ops/settings" Bearer Write, args: (), query: crate::ops::OpsQuery, body: oshal_ops::rule::Settings => crate::ops::SettingsView;
    /// Silence the alerts some matchers match, for a while: 201.
    AddSilence = Post "/api/v1/ops/silences" Bearer Write, args: (), query: crate::ops::OpsQuery, body: oshal_ops::rule::Silence => crate::ops::SettingsView, 201;
    /// A maintenance window: the alerts it matches open nothing: 201.
    AddMaintenance = Post "/api/v1/ops/maintenance" Bearer Write, args: (), query: crate::ops::OpsQuery, body: oshal_ops::rule::MaintenanceWindow => crate::ops::SettingsView, 201;
    /// Record a change event (a deploy, a node joined…), kept as evidence
    /// on the incidents near it: 201.
    RecordChange = Post "/api/v1/ops/changes" Bearer Write, args: (), query: crate::ops::OpsQuery, body: oshal_ops::monitor::ChangeEvent => crate::ops::SettingsView, 201;
    /// A tenant's change events (nodes joining and leaving, tickets requeued, lanes reset, budgets, deploys), oldest first; what an investigation's `list_changes` replays.
    ListChanges = Get "/api/v1/ops/changes" Bearer Read, args: (), query: crate::ops::ChangesQuery, body: () => Vec<oshal_ops::monitor::ChangeEvent>;

    /// The mesh read live: Headscale's nodes, keys and policy, this host's
    /// `tailscaled`, merged per node with their disagreements, round trips,
    /// the live bots of each Oshal node and the policy's reachability matrix.
    GetMesh = Get "/api/v1/mesh" Bearer Operator, args: (), query: (), body: () => crate::mesh::MeshView;
    /// Store the Headscale API key in the secret backend (never returned): 204.
    StoreMeshKey = Put "/api/v1/mesh/key" Bearer Operator, args: (), query: (), body: crate::mesh::MeshKey => (), 204;
    /// Mint a single-use, tagged, expiring pre-auth key for a new node and
    /// the commands that join it (the key is shown this once): 201.
    EnrolNode = Post "/api/v1/mesh/enrol" Bearer Operator, args: (), query: (), body: oshal_mesh::enrol::Enrolment => oshal_mesh::enrol::Enrolled, 201;
    /// A policy change checked against the live nodes: the matrix, the
    /// cells it turns, the nodes it cuts.
    CheckMeshPolicy = Post "/api/v1/mesh/policy/check" Bearer Operator, args: (), query: (), body: crate::mesh::PolicyChange => oshal_mesh::policy::PolicyCheck;
    /// Write a policy once checked; one that cuts a node off a service
    /// it reaches today needs `confirm` (else 409).
    SetMeshPolicy = Put "/api/v1/mesh/policy" Bearer Operator, args: (), query: (), body: crate::mesh::PolicyChange => oshal_mesh::policy::PolicyCheck;

    /// What has flowed along each edge of the architecture since start
    /// (the gate, admission, lanes, results, the store, the broker):
    /// cumulative counts a surface turns into rates by reading twice.
    GetFlow = Get "/api/v1/flow" Bearer Operator, args: (), query: (), body: () => crate::controller::FlowCounts;
    /// The last two minutes, second by second, as the controller committed
    /// them (tickets finished, spend): what a chart opened late starts from.
    GetSeries = Get "/api/v1/series" Bearer Operator, args: (), query: (), body: () => Vec<crate::controller::series::Second>;

    /// Prometheus text exposition.
    Metrics = Get "/metrics" Bearer Read, args: (), query: (), body: () => String;
}

#[cfg(test)]
mod tests {
    use super::*;
    use oshal_kernel::name::Named;

    /// `(METHOD, path)` of every API call in the browser's transport: each
    /// string or template literal that starts `/api/`, its method the
    /// `"GET"`-style literal just before it (else GET: a plain `fetch` or the
    /// event socket's URL). A `${…}` that is a whole segment reads as `{}`;
    /// the query is dropped.
    fn transport_calls(ts: &str) -> Vec<(String, String)> {
        let mut calls = Vec::new();
        let bytes = ts.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let q = bytes[i];
            if (q == b'"' || q == b'`') && ts[i + 1..].starts_with("/api/") {
                // The literal's end: the matching quote, skipping `${…}`.
                let (mut j, mut depth) = (i + 1, 0);
                while j < bytes.len() && !(bytes[j] == q && depth == 0) {
                    match bytes[j] {
                        b'{' if j > 0 && bytes[j - 1] == b'$' => depth += 1,
                        b'}' if depth > 0 => depth -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                let raw = &ts[i + 1..j];
                let mut path = String::new();
                let mut rest = raw;
                while let Some(c) = rest.chars().next() {
                    if rest.starts_with("${") {
                        let end = rest.find('}').map_or(rest.len(), |e| e + 1);
                        let whole = path.ends_with('/')
                            && rest[end..]
                                .chars()
                                .next()
                                .is_none_or(|c| c == '/' || c == '?');
                        if !whole {
                            break;
                        }
                        path.push_str("{}");
                        rest = &rest[end..];
                        continue;
                    }
                    if c == '?' || c == '#' {
                        break;
                    }
                    path.push(c);
                    rest = &rest[c.len_utf8()..];
                }
                let before = ts[..i].trim_end().trim_end_matches(',').trim_end();
                let method = ["GET", "POST", "PUT", "DELETE"]
                    .into_iter()
                    .find(|m| before.ends_with(&format!("\"{m}\"")))
                    .unwrap_or("GET");
                calls.push((method.to_owned(), path));
                i = j + 1;
                continue;
            }
            i += 1;
        }
        calls
    }

    /// The browser speaks the same API as the table: every call its HTTP
    /// transport makes is a row (a path the table lost, or a method changed
    /// on one side only, fails here, not in a user's browser).
    #[test]
    fn the_ui_transport_calls_only_routes_of_the_table() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ui/src/lib/transport.ts");
        let ts = std::fs::read_to_string(file).expect("ui/src/lib/transport.ts");
        let calls = transport_calls(&ts);
        assert!(calls.len() >= 15, "found only {calls:?}");
        let table: Vec<(String, String)> = ALL
            .iter()
            .map(|r| {
                let mut path = String::new();
                for (k, seg) in r.path.split('/').enumerate() {
                    if k > 0 {
                        path.push('/');
                    }
                    path.push_str(if seg.starts_with('{') { "{}" } else { seg });
                }
                (r.verb.as_str().to_owned(), path)
            })
            .collect();
        for call in &calls {
            assert!(
                table.contains(call),
                "ui/src/lib/transport.ts calls {} {}, which is not in api::routes",
                call.0,
                call.1
            );
        }
    }

    #[test]
    fn the_transport_reader_reads_methods_segments_and_queries() {
        let ts = r#"
            a = () => this.call<X>("POST", `/api/v1/tickets/${encodeURIComponent(id)}/cancel`);
            b = () => this.call<X>("GET", `/api/v1/tickets?${q}`);
            c = () => fetch(this.base + "/api/v1/health");
            d = (s) => this.call<X>("GET", `/api/v1/security/findings${s ? `?state=${s}` : ""}`);
        "#;
        let calls = transport_calls(ts);
        let want = [
            ("POST", "/api/v1/tickets/{}/cancel"),
            ("GET", "/api/v1/tickets"),
            ("GET", "/api/v1/health"),
            ("GET", "/api/v1/security/findings"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(calls, want);
    }

    #[test]
    fn every_row_is_one_method_on_one_path() {
        let mut seen = std::collections::HashSet::new();
        for r in ALL {
            assert!(
                seen.insert((r.verb, r.path)),
                "{} {} twice",
                r.verb.as_str(),
                r.path
            );
            assert!(r.path.starts_with("/api/v1/") || r.path == "/metrics");
        }
        assert_eq!(
            ALL.iter().filter(|r| r.auth == Auth::Public).count(),
            1,
            "health alone answers without a token"
        );
    }
}
