//! The API's OpenAPI 3.1 contract, generated from the route table and the
//! Rust types that cross it.
//!
//! Nothing here is written by hand but the mapping: each row of
//! [`routes`](super::routes) becomes one operation, its query, body and reply
//! become schemas derived (`utoipa::ToSchema`) from the very types the server
//! parses and the client reads, and its error replies are the one
//! [`ErrorBody`] shape with the statuses the row can answer. The server
//! serves it at `GET /api/v1/openapi.json`, `oshal openapi` prints it, and a
//! test keeps the committed copy (`core/platform/openapi.json`) current.

use std::collections::BTreeMap;

use utoipa::openapi::path::{
    Operation, OperationBuilder, Parameter, ParameterBuilder, ParameterIn,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, HttpMethod, InfoBuilder, OpenApi, OpenApiBuilder, PathItem,
    Paths, Ref, RefOr, Required, SecurityRequirement,
};
use utoipa::{IntoParams, ToSchema};

use super::ErrorBody;
use super::routes::{self as r, Auth, Endpoint, Route, Verb};
use oshal_kernel::name::Named;

/// The schemas a document collects, by name.
#[derive(Debug, Default)]
pub struct Defs(BTreeMap<String, RefOr<Schema>>);

impl Defs {
    /// A `$ref` to `T`, whose schema (and those it refers to) joins the
    /// document's components.
    pub fn named<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let name = T::name().into_owned();
        if !self.0.contains_key(&name) {
            self.0.insert(name.clone(), T::schema());
            let mut deps = Vec::new();
            T::schemas(&mut deps);
            for (n, s) in deps {
                self.0.entry(n).or_insert(s);
            }
        }
        Ref::from_schema_name(name).into()
    }
}

/// A type as the contract shows it: its schema, or none for "no content".
pub trait ContractType {
    /// The media type a value of it travels as.
    const MEDIA: &'static str = "application/json";
    fn schema(defs: &mut Defs) -> Option<RefOr<Schema>>;
}

impl ContractType for () {
    fn schema(_: &mut Defs) -> Option<RefOr<Schema>> {
        None
    }
}

impl ContractType for serde_json::Value {
    fn schema(_: &mut Defs) -> Option<RefOr<Schema>> {
        Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::AnyValue)
                .into(),
        )
    }
}

/// Text: the Prometheus exposition.
impl ContractType for String {
    const MEDIA: &'static str = "text/plain";
    fn schema(_: &mut Defs) -> Option<RefOr<Schema>> {
        Some(ObjectBuilder::new().schema_type(Type::String).into())
    }
}

impl<T: ContractType> ContractType for Vec<T> {
    fn schema(defs: &mut Defs) -> Option<RefOr<Schema>> {
        let items = T::schema(defs)?;
        Some(ArrayBuilder::new().items(items).into())
    }
}

macro_rules! named {
    ($($t:ty),* $(,)?) => {$(
        impl ContractType for $t {
            fn schema(defs: &mut Defs) -> Option<RefOr<Schema>> {
                Some(defs.named::<$t>())
            }
        }
    )*};
}

named!(
    crate::controller::Health,
    crate::controller::Submitted,
    crate::controller::BotView,
    crate::controller::CoreEvent,
    crate::ticket::NewTicket,
    crate::store::TicketPage,
    crate::store::TicketView,
    crate::store::Cleared,
    crate::store::Tenant,
    crate::cost::CostSummary,
    super::StateCount,
    super::BulkRequest,
    super::BulkReport,
    super::BatchSubmit,
    super::BatchReport,
    super::BudgetBody,
    super::BotHold,
    super::NodeHold,
    super::NodeRestarted,
    super::TenantHold,
    super::TenantView,
    crate::connector::ConnectorView,
    crate::connector::IntegrationView,
    crate::connector::NewGrant,
    crate::connector::store::Grant,
    crate::connector::store::AuditEntry,
    crate::connector::store::EffectRow,
    crate::security::Finding,
    crate::security::ScanReport,
    crate::security::SuppressRequest,
    crate::security::ControlView,
    super::tokens::WhoAmI,
    super::tokens::NewToken,
    super::tokens::IssuedToken,
    super::tokens::TokenView,
    crate::trading::NewSession,
    crate::trading::SessionView,
    crate::trading::Blotter,
    crate::trading::RecapView,
    crate::trading::KillRequest,
    crate::trading::KillView,
    crate::trading::StateRequest,
    crate::trading::StateChangeView,
    crate::trading::OrderView,
    crate::trading::CloseRequest,
    crate::workflow::SpecSource,
    crate::workflow::Validation,
    crate::workflow::NewRun,
    crate::workflow::RunSummary,
    crate::workflow::RunView,
    crate::workflow::HistoryEntry,
    crate::workflow::Decision,
    crate::workflow::RetryRequest,
    crate::workflow::StopRequest,
    crate::workflow::PendingApproval,
    crate::workflow::Shape,
    crate::workflow::NewDefinition,
    crate::workflow::DefinitionView,
    crate::workflow::DefinitionDiff,
    crate::workflow::GenerateRequest,
    crate::workflow::Generated,
    crate::workflow::UpgradeRequest,
    crate::workflow::UpgradeView,
    crate::ops::Ingested,
    crate::ops::PagerDutyAck,
    crate::ops::IncidentSummary,
    crate::ops::IncidentView,
    crate::ops::MoveIncident,
    crate::ops::MoveAction,
    crate::ops::SettingsView,
    oshal_ops::alert::Alert,
    crate::ops::AlertRow,
    oshal_ops::rule::Settings,
    oshal_ops::rule::Silence,
    oshal_ops::rule::MaintenanceWindow,
    oshal_ops::monitor::ChangeEvent,
    oshal_ops::report::Postmortem,
    oshal_ops::report::PostmortemEdit,
    crate::ops::HealDecision,
    crate::mesh::MeshView,
    crate::controller::FlowCounts,
    crate::controller::series::Second,
    crate::mesh::MeshKey,
    crate::mesh::PolicyChange,
    oshal_mesh::enrol::Enrolment,
    oshal_mesh::enrol::Enrolled,
    oshal_mesh::policy::PolicyCheck,
);

/// A query string as the contract shows it: its parameters.
pub trait QueryParams {
    fn parameters() -> Vec<Parameter>;
}

impl QueryParams for () {
    fn parameters() -> Vec<Parameter> {
        Vec::new()
    }
}

macro_rules! query {
    ($($t:ty),* $(,)?) => {$(
        impl QueryParams for $t {
            fn parameters() -> Vec<Parameter> {
                <$t as IntoParams>::into_params(|| Some(ParameterIn::Query))
            }
        }
    )*};
}

query!(
    super::TicketFilter,
    super::ClearQuery,
    super::GrantQuery,
    super::RevokeQuery,
    super::TrailQuery,
    super::FindingsQuery,
    crate::trading::OrdersQuery,
    crate::workflow::DefinitionQuery,
    crate::ops::OpsQuery,
    crate::ops::AlertsQuery,
    crate::ops::ChangesQuery,
);

/// The schema of a path's `{id}`, by the resource it names.
fn id_schema(route: &Route, defs: &mut Defs) -> RefOr<Schema> {
    let resource = route
        .path
        .split('/')
        .take_while(|s| !s.starts_with('{'))
        .last()
        .unwrap_or_default();
    match resource {
        "tickets" => defs.named::<crate::ticket::TicketId>(),
        "tenants" => defs.named::<crate::ticket::TenantId>(),
        // A node's name is its bots' prefix: a bot id's shape.
        "bots" | "nodes" => defs.named::<crate::ticket::BotId>(),
        "connectors" | "catalog" => ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(128))
            .pattern(Some("^[^\\u0000]*$"))
            .into(),
        "grants" | "runs" => ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Uuid,
            )))
            .into(),
        "findings" => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9a-f]{16}$"))
            .into(),
        "tokens" => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^tok_[0-9a-f]{16}$"))
            .into(),
        "sessions" => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^ds-[0-9a-f]{12}$"))
            .into(),
        // A workflow's name.
        "definitions" => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[a-z][a-z0-9-]{0,63}$"))
            .into(),
        // An alert's fingerprint.
        "alerts" => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9a-f]{32}$"))
            .into(),
        "incidents" => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^INC-[1-9][0-9]{0,8}$"))
            .into(),
        other => panic!("{}: no schema for the id of {other:?}", route.name),
    }
}

/// The statuses a row can answer besides its success, each with the one
/// error shape. Derived from what the row has (a token, a body, a query, an
/// id); the few routes with a reason of their own are named.
fn error_statuses(route: &Route, body: bool, query: bool) -> Vec<(u16, &'static str)> {
    let mut out = Vec::new();
    if body || query {
        out.push((400, "The request is not well-formed (kind `malformed`)."));
    }
    if route.auth != Auth::Public {
        out.push((401, "No token, or a wrong one (kind `unauthorized`)."));
        out.push((
            403,
            "The token may not do this: a tenant's token on the operator's routes, a viewer's on a write, or another tenant named (kind `forbidden`).",
        ));
    }
    if route.params() > 0
        || route.path.starts_with("/api/v1/security/")
        || route.path.starts_with("/api/v1/ops/")
        || route.path.starts_with("/api/v1/mesh/")
        || matches!(
            route.name,
            "RevokeGrantByQuery" | "StartRun" | "GenerateWorkflow"
        )
    {
        out.push((404, "No such resource (kind `not_found`)."));
    }
    if (route.params() > 0 && route.verb == Verb::Post)
        || (route.path.starts_with("/api/v1/ops/") && route.verb != Verb::Get)
        || route.name == "SetMeshPolicy"
    {
        out.push((
            409,
            "Its state does not allow this (kind `illegal_transition`).",
        ));
    }
    if body {
        out.push((413, "The body is larger than the limit (kind `too_large`)."));
    }
    if body || query || route.params() > 0 {
        out.push((
            422,
            "A field is well-formed but not acceptable; `field` names it and `limit` gives the bound (kinds `invalid`, `budget_exhausted`, `unknown_tenant`).",
        ));
    }
    if route.path.starts_with("/api/v1/mesh/") && route.name != "StoreMeshKey" {
        out.push((
            502,
            "Headscale could not be reached, refused the key or failed (kind `unreachable`).",
        ));
    }
    if matches!(route.name, "SubmitTicket" | "BatchTickets") {
        out.push((429, "Too many unfinished tickets (kind `overloaded`)."));
    }
    out.push((
        503,
        "The store is unavailable or the controller is stopping (kinds `store_unavailable`, `shutting_down`).",
    ));
    out
}

/// Who may call a row, as the contract tells a reader.
fn access(route: &Route) -> &'static str {
    use super::routes::Access;
    match (route.auth, route.access) {
        (Auth::Public, _) => "Access: anyone, no token.",
        (_, Access::Operator) => "Access: the server's own (operator) token only.",
        (_, Access::Read) => {
            "Access: any token; a tenant's token sees its own tenant's share alone."
        }
        (_, Access::Write) => {
            "Access: the operator token, or a tenant token with the operator role, on its own tenant alone."
        }
    }
}

/// Links between operations, for stateful testing and for readers: what
/// an answer's `id` lets a client do next, as `(from, to)` operation ids.
const LINKS: &[(&str, &str)] = &[
    ("SubmitTicket", "GetTicket"),
    ("SubmitTicket", "CancelTicket"),
    ("SubmitTicket", "ApproveTicket"),
    ("AddGrant", "RevokeGrant"),
    ("ImportCatalog", "ApproveCatalog"),
    ("CreateToken", "RevokeToken"),
];

/// The bodies that are whole documents of another format (an OpenAPI
/// document, a SARIF log) or a free-form map, which the Rust side reads as
/// JSON values and checks field by field: their outline, with its limits.
fn documents(route: &Route) -> Option<RefOr<Schema>> {
    let string = |min: usize, max: Option<usize>| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(min))
            .max_length(max)
    };
    let object = || ObjectBuilder::new().schema_type(Type::Object);
    match route.name {
        "PutCredential" => Some(
            object()
                .description(Some(
                    "The connector's credential fields (e.g. `api_key`): 1..=8 non-empty strings of at most 4096 bytes. Stored in the secret backend; never answered.",
                ))
                .min_properties(Some(1))
                .max_properties(Some(8))
                .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::RefOr(
                    string(1, Some(4096)).into(),
                )))
                .into(),
        ),
        "ImportCatalog" => Some(
            object()
                .description(Some("An OpenAPI 3.x document describing the connector's API."))
                .property("openapi", string(1, None).pattern(Some("^3\\.")))
                .property("info", object())
                .property("paths", object())
                .required("openapi")
                .required("info")
                .required("paths")
                .into(),
        ),
        "ImportSarif" => Some(
            object()
                .description(Some("A SARIF 2.1.0 log."))
                .property("version", string(1, None).pattern(Some("^2\\.1\\.0$")))
                .property("runs", ArrayBuilder::new().items(object()))
                .required("version")
                .required("runs")
                .into(),
        ),
        _ => None,
    }
}

/// One operation of the contract, from its row and its types.
pub fn operation<E: Endpoint>(defs: &mut Defs) -> (Route, Operation) {
    let route = E::ROUTE;
    let mut doc = route.doc.lines().map(str::trim);
    let summary = doc.next().unwrap_or_default().to_owned();
    let mut op = OperationBuilder::new()
        .operation_id(Some(route.name))
        .summary(Some(summary))
        .description(Some(format!("{}\n\n{}", route.doc.trim(), access(&route))))
        .tag(tag(&route));
    if route.params() > 0 {
        op = op.parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(id_schema(&route, defs))),
        );
    }
    let query = E::Query::parameters();
    let has_query = !query.is_empty();
    for p in query {
        op = op.parameter(p);
    }
    let body = documents(&route).or_else(|| E::Body::schema(defs));
    let has_body = body.is_some();
    if let Some(schema) = body {
        op = op.request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    E::Body::MEDIA,
                    ContentBuilder::new().schema(Some(schema)).build(),
                )
                .build(),
        ));
    }
    let mut ok = ResponseBuilder::new().description(success(&route));
    if let Some(schema) = E::Response::schema(defs) {
        let media = match route.name {
            "ExportSarif" => "application/sarif+json",
            _ => E::Response::MEDIA,
        };
        ok = ok.content(media, ContentBuilder::new().schema(Some(schema)).build());
    }
    op = op.response(route.ok.to_string(), ok.build());
    if route.name == "SubmitTicket" {
        op = op.response(
            "200",
            ResponseBuilder::new()
                .description("A repeated idempotency key: the first submission's ticket, with `duplicate: true`.")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(defs.named::<crate::controller::Submitted>()))
                        .build(),
                )
                .build(),
        );
    }
    if route.name == "Events" {
        op = op.response(
            "400",
            error_response("Not a WebSocket upgrade request (kind `malformed`).", defs),
        );
    }
    for (status, why) in error_statuses(&route, has_body, has_query) {
        op = op.response(status.to_string(), error_response(why, defs));
    }
    match route.auth {
        Auth::Public => op = op.securities(Some(Vec::<SecurityRequirement>::new())),
        Auth::Bearer => op = op.security(SecurityRequirement::new("bearer", Vec::<String>::new())),
        Auth::BearerOrQuery => {
            op = op
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .security(SecurityRequirement::new(
                    "query_token",
                    Vec::<String>::new(),
                ));
        }
    }
    (route, op.build())
}

fn error_response(why: &str, defs: &mut Defs) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(why)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(defs.named::<ErrorBody>()))
                .build(),
        )
        .build()
}

fn success(route: &Route) -> &'static str {
    match route.ok {
        101 => "Switched to a WebSocket carrying one JSON `CoreEvent` per text message.",
        201 => "Created.",
        204 => "Done; no content.",
        _ => "OK.",
    }
}

/// The tag grouping a route in documentation: its resource.
fn tag(route: &Route) -> &'static str {
    let path = route.path;
    if path.starts_with("/api/v1/tickets") {
        "tickets"
    } else if path.starts_with("/api/v1/security") {
        "security"
    } else if [
        "connectors",
        "catalog",
        "grants",
        "audit",
        "integrations",
        "effects",
    ]
    .iter()
    .any(|p| path.starts_with(&format!("/api/v1/{p}")))
    {
        "connectors"
    } else {
        "fleet"
    }
}

/// The whole contract.
pub fn openapi() -> OpenApi {
    let mut defs = Defs::default();
    // Named by `NewTicket`'s payload, which the derive cannot follow.
    defs.named::<crate::ticket::ChatPayload>();
    defs.named::<crate::ticket::ToolPayload>();
    defs.named::<crate::ticket::SignalPayload>();
    defs.named::<crate::ticket::MediaPayload>();
    defs.named::<crate::ticket::BuildPayload>();
    defs.named::<crate::ticket::InvestigatePayload>();
    let mut paths = Paths::new();
    for (route, op) in r::operations(&mut defs) {
        let method = match route.verb {
            Verb::Get => HttpMethod::Get,
            Verb::Post => HttpMethod::Post,
            Verb::Put => HttpMethod::Put,
            Verb::Delete => HttpMethod::Delete,
        };
        match paths.paths.get_mut(route.path) {
            Some(item) => item.merge_operations(PathItem::new(method, op)),
            None => {
                paths
                    .paths
                    .insert(route.path.to_owned(), PathItem::new(method, op));
            }
        }
    }
    let mut components = ComponentsBuilder::new()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The API token (`oshal serve` prints where it is kept). Required on every route but health, loopback included.",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "query_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The API token as `?token=`, for the event WebSocket alone (a browser's WebSocket cannot set headers).",
            ))),
        );
    for (name, schema) in defs.0 {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Oshal API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The control center's HTTP API. Every error is `{\"error\": {kind, message, field?, limit?}}`; `field` names the offending input and `limit` its bound.",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components.build()))
        .build()
}

/// The contract as the server serves it and the repository keeps it.
pub fn openapi_json() -> String {
    let mut doc = serde_json::to_value(openapi()).expect("the contract serialises");
    // utoipa 5 writes a link's `operationId` as `operation_id`, which no
    // reader knows, so the links join the document here, as JSON.
    for (from, to) in LINKS {
        let ok = r::ALL
            .iter()
            .find(|r| r.name == *from)
            .expect("a link starts at a row");
        let verb = ok.verb.as_str().to_lowercase();
        let response = &mut doc["paths"][ok.path][verb]["responses"][ok.ok.to_string()];
        response["links"][*to] = serde_json::json!({
            "operationId": to,
            "parameters": {"id": "$response.body#/id"},
        });
    }
    let mut s = serde_json::to_string_pretty(&doc).expect("the contract serialises");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;
