//! The surface contract: typed commands, events and errors, and their servers.
//!
//! Every surface — the HTTP/WebSocket API ([`http`]), the `oshal` CLI (through
//! [`client`]) and the desktop app — speaks these types. Whatever crosses the
//! boundary derives `specta::Type`, so the UI's TypeScript is generated, not
//! written. There is one error shape a caller may see, [`ApiError`]: it names
//! the field and the limit for bad input and hides internals for bugs.

mod clear;
pub mod client;
pub mod contract;
mod from;
pub mod http;
pub mod routes;
#[cfg(test)]
mod tests;
pub mod tokens;

pub use clear::{ClearQuery, clear};

use serde::{Deserialize, Serialize};
use specta::Type;

use oshal_kernel::name::Named;

/// What went wrong, as a caller may branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is not well-formed (not JSON, wrong types).
    Malformed,
    Unauthorized,
    /// The token is good but may not do this (a tenant's token on the
    /// fleet's configuration, a viewer writing, another tenant named).
    Forbidden,
    NotFound,
    /// The route exists but not with this method (the `Allow` header lists
    /// those it takes).
    MethodNotAllowed,
    /// The ticket's (or bot's, run's, incident's) state does not allow
    /// this.
    IllegalTransition,
    TooLarge,
    /// A field is present and well-formed but not acceptable.
    Invalid,
    BudgetExhausted,
    UnknownTenant,
    Overloaded,
    StoreUnavailable,
    ShuttingDown,
    /// The controller this client is attached to cannot be reached.
    Unreachable,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            Self::Malformed => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::IllegalTransition => 409,
            Self::TooLarge => 413,
            Self::Invalid | Self::BudgetExhausted | Self::UnknownTenant => 422,
            Self::Overloaded => 429,
            Self::StoreUnavailable | Self::ShuttingDown => 503,
            Self::Unreachable => 502,
            Self::Internal => 500,
        }
    }
}

/// The one error every surface shows: `{"error": {kind, message, field?, limit?}}`.
#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, Type, thiserror::Error, utoipa::ToSchema,
)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[specta(type = Option<specta_typescript::Number>)]
    pub limit: Option<u64>,
}

/// How many tickets are in one state (the lifecycle diagram's numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct StateCount {
    pub state: crate::ticket::TicketState,
    #[specta(type = specta_typescript::Number)]
    pub count: u64,
}

/// The lifecycle diagram's numbers, as every surface answers them.
pub async fn state_counts(
    controller: &crate::controller::Controller,
    only: Option<&crate::ticket::TenantId>,
) -> Result<Vec<StateCount>, ApiError> {
    Ok(controller
        .state_counts_of(only)
        .await?
        .into_iter()
        .map(|(state, n)| StateCount {
            state,
            count: u64::try_from(n).unwrap_or(0),
        })
        .collect())
}

/// What a bulk operation does to the tickets its filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BulkAction {
    /// Cancel every unfinished one.
    Cancel,
    /// Submit a copy of every dead or cancelled one (its parent is the
    /// original; retrying the same ticket twice gives the same copy).
    Retry,
}

/// Deserializes `T` from a JSON object only: serde alone would also take a
/// struct from an array of its fields in order, which no client means.
fn object_only<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
    T::deserialize(serde_json::Value::Object(map)).map_err(serde::de::Error::custom)
}

/// The most tickets one bulk operation touches.
pub const MAX_BULK: u32 = 10_000;

/// A bulk operation as a surface asks for it: dry-run first to see the count.
#[derive(Debug, Clone, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub action: BulkAction,
    /// Which tickets (state, tenant, bot, kind; no cursor or limit).
    #[serde(default, deserialize_with = "object_only")]
    #[specta(type = TicketFilter)]
    pub filter: TicketFilter,
    /// Count what would change; change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// At most this many matching tickets (1..=10,000; default 1,000).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10_000)]
    pub max: Option<u32>,
}

/// One ticket a bulk operation could not act on, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct BulkFailure {
    pub id: crate::ticket::TicketId,
    pub error: String,
}

/// What a bulk operation found and did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct BulkReport {
    pub action: BulkAction,
    pub dry_run: bool,
    /// Tickets the filter matched (at most `max`).
    pub matched: u32,
    /// Of them, those the action applies to.
    pub eligible: u32,
    /// Changed (cancelled, or retried as a new ticket); 0 in a dry run.
    pub done: u32,
    /// More tickets matched than `max`: run it again for the rest.
    pub truncated: bool,
    /// Retry: the new tickets.
    pub created: Vec<crate::ticket::TicketId>,
    /// The first 100 tickets it could not act on.
    pub failed: Vec<BulkFailure>,
}

/// The most tickets one batch submission carries.
pub const MAX_BATCH: usize = 1_000;

/// Many tickets in one request (`POST /api/v1/tickets/batch`). Each is
/// admitted or refused on its own; the answers come back in request order.
#[derive(Debug, Clone, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSubmit {
    /// 1..=1,000 tickets, each as `POST /api/v1/tickets` takes it.
    #[schema(min_items = 1, max_items = 1000)]
    pub tickets: Vec<crate::ticket::NewTicket>,
}

/// One ticket's answer in a batch: `{"accepted": …}` or `{"refused": …}`,
/// where a refusal's `field` is prefixed with the ticket's place
/// (`tickets[3].payload.prompt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchItem {
    Accepted(crate::controller::Submitted),
    Refused(ApiError),
}

/// The answers to a batch, one per ticket, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct BatchReport {
    pub results: Vec<BatchItem>,
}

/// Submits a batch: the tickets go to the controller together (one durable
/// commit for all that are admitted), and each gets its own answer.
pub async fn submit_batch(
    controller: &crate::controller::Controller,
    request: BatchSubmit,
) -> Result<BatchReport, ApiError> {
    let n = request.tickets.len();
    if n == 0 || n > MAX_BATCH {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            format!("tickets holds {n}; a batch carries 1..={MAX_BATCH}"),
        )
        .field("tickets")
        .limit(MAX_BATCH as u64));
    }
    let results = controller
        .submit_many(request.tickets)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            Ok(submitted) => BatchItem::Accepted(submitted),
            Err(e) => {
                let mut e = ApiError::from(e);
                e.field = Some(match e.field.take() {
                    Some(f) => format!("tickets[{i}].{f}"),
                    None => format!("tickets[{i}]"),
                });
                BatchItem::Refused(e)
            }
        })
        .collect();
    Ok(BatchReport { results })
}

/// Runs a bulk cancel or retry over the tickets `request.filter` matches.
pub async fn bulk(
    controller: &crate::controller::Controller,
    request: &BulkRequest,
) -> Result<BulkReport, ApiError> {
    use crate::ticket::{NewTicket, TicketState};
    if request.filter.cursor.is_some() || request.filter.limit.is_some() {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            "a bulk filter takes state, tenant, bot and kind; use max to bound it",
        )
        .field("filter"));
    }
    let max = request.max.unwrap_or(1_000);
    if max == 0 || max > MAX_BULK {
        return Err(ApiError::new(
            ErrorKind::Invalid,
            format!("max {max} is outside 1..={MAX_BULK}"),
        )
        .field("max")
        .limit(u64::from(MAX_BULK)));
    }
    let mut query = request.filter.query()?;
    query.limit = crate::store::MAX_PAGE;
    let mut matched = Vec::new();
    let mut truncated = false;
    loop {
        let page = controller.tickets(&query).await?;
        for t in page.tickets {
            if matched.len() as u32 == max {
                truncated = true;
                break;
            }
            matched.push(t);
        }
        match page.next_cursor {
            Some(c) if !truncated => query.cursor = Some(c),
            _ => break,
        }
    }
    let eligible: Vec<_> = matched
        .iter()
        .filter(|t| match request.action {
            BulkAction::Cancel => !t.state.is_terminal(),
            BulkAction::Retry => matches!(t.state, TicketState::Dead | TicketState::Cancelled),
        })
        .collect();
    let mut report = BulkReport {
        action: request.action,
        dry_run: request.dry_run,
        matched: matched.len() as u32,
        eligible: eligible.len() as u32,
        done: 0,
        truncated,
        created: Vec::new(),
        failed: Vec::new(),
    };
    if request.dry_run {
        return Ok(report);
    }
    let fail = |report: &mut BulkReport, id, error: String| {
        if report.failed.len() < 100 {
            report.failed.push(BulkFailure { id, error });
        }
    };
    match request.action {
        BulkAction::Cancel => {
            for t in eligible {
                match controller.cancel(t.id).await {
                    Ok(_) => report.done += 1,
                    // Finished meanwhile: nothing left to cancel.
                    Err(e) => fail(&mut report, t.id, e.to_string()),
                }
            }
        }
        BulkAction::Retry => {
            for chunk in eligible.chunks(500) {
                let mut copies = Vec::with_capacity(chunk.len());
                let mut ids = Vec::with_capacity(chunk.len());
                for t in chunk {
                    match controller.ticket(t.id).await {
                        Ok(v) => {
                            ids.push(t.id);
                            copies.push(NewTicket {
                                kind: v.kind,
                                payload: v.payload,
                                tenant: Some(v.tenant.to_string()),
                                idempotency_key: Some(format!("retry-of-{}", v.id)),
                                priority: Some(v.priority),
                                skill: Some(v.skill.to_string()),
                                max_attempts: Some(v.max_attempts),
                                parent_id: Some(v.id.to_string()),
                                causation_id: Some(v.id.to_string()),
                                ..NewTicket::default()
                            });
                        }
                        Err(e) => fail(&mut report, t.id, e.to_string()),
                    }
                }
                for (id, r) in ids.into_iter().zip(controller.submit_many(copies).await) {
                    match r {
                        Ok(s) if s.duplicate => {
                            fail(&mut report, id, format!("already retried as {}", s.id))
                        }
                        Ok(s) => {
                            report.done += 1;
                            report.created.push(s.id);
                        }
                        Err(e) => fail(&mut report, id, e.to_string()),
                    }
                }
            }
        }
    }
    Ok(report)
}

/// A ticket list's filters as a surface sends them (query parameters over
/// HTTP, a command argument in the app): all optional text, checked here so
/// every surface refuses the same input with the same field named.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    utoipa::IntoParams,
)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketFilter {
    #[serde(default)]
    #[schema(value_type = Option<crate::ticket::TicketState>)]
    #[param(value_type = Option<crate::ticket::TicketState>)]
    pub state: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::ticket::TenantId>)]
    #[param(value_type = Option<crate::ticket::TenantId>)]
    pub tenant: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<crate::ticket::BotId>)]
    #[param(value_type = Option<crate::ticket::BotId>)]
    pub bot: Option<String>,
    /// A kind of work: `chat`, `tool`, `signal`, `media` or `build`.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^(chat|tool|signal|media|build|investigate)$")]
    #[param(value_type = Option<String>, pattern = "^(chat|tool|signal|media|build|investigate)$")]
    pub kind: Option<String>,
    /// Only tickets whose idempotency key starts with this: 1..=64 of
    /// a-z, 0-9, ':' and '-' (the walk-through tags its own `tour:<id>:`).
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9:-]{0,63}$")]
    #[param(value_type = Option<String>, pattern = "^[a-z0-9][a-z0-9:-]{0,63}$")]
    pub tag: Option<String>,
    /// `next_cursor` of the previous page (not in a bulk filter).
    #[serde(default)]
    #[schema(ignore)]
    #[param(value_type = Option<crate::ticket::TicketId>)]
    pub cursor: Option<String>,
    /// 1..=1000; 100 if absent (not in a bulk filter).
    #[serde(default)]
    #[schema(ignore)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

impl TicketFilter {
    pub fn query(&self) -> Result<crate::store::TicketQuery, ApiError> {
        use crate::store::MAX_PAGE;
        use crate::ticket::{BotId, TenantId, TicketId, TicketState};
        let invalid =
            |field: &str, msg: String| ApiError::new(ErrorKind::Invalid, msg).field(field);
        for (field, v) in [
            ("state", &self.state),
            ("tenant", &self.tenant),
            ("bot", &self.bot),
            ("kind", &self.kind),
            ("tag", &self.tag),
            ("cursor", &self.cursor),
            ("limit", &self.limit),
        ] {
            if v.as_deref() == Some("") {
                return Err(invalid(
                    field,
                    format!("{field} is empty; leave it out to mean any"),
                ));
            }
        }
        let state = match self.state.clone() {
            None => None,
            Some(s) => Some(TicketState::parse(&s).ok_or_else(|| {
                let known: Vec<_> = TicketState::all().iter().map(|s| s.as_str()).collect();
                invalid(
                    "state",
                    format!("unknown state {s:?}; known states: {}", known.join(", ")),
                )
            })?),
        };
        let limit = match self.limit.clone() {
            None => 100,
            Some(l) => match l.parse::<u32>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(invalid("limit", format!("{l:?} is outside 1..={MAX_PAGE}"))
                        .limit(u64::from(MAX_PAGE)));
                }
            },
        };
        let cursor = match self.cursor.clone() {
            None => None,
            Some(c) => Some(TicketId::parse(&c).map_err(|_| {
                invalid(
                    "cursor",
                    format!("{c:?} is not a cursor from a previous page"),
                )
            })?),
        };
        Ok(crate::store::TicketQuery {
            state,
            tenant: self
                .tenant
                .clone()
                .map(|t| TenantId::parse(&t))
                .transpose()?,
            bot: self.bot.clone().map(|b| BotId::parse(&b)).transpose()?,
            kind: self
                .kind
                .clone()
                .map(|k| match crate::ticket::Work::KINDS.contains(&k.as_str()) {
                    true => Ok(k),
                    false => Err(invalid(
                        "kind",
                        format!(
                            "unknown kind {k:?}; known kinds: {}",
                            crate::ticket::Work::KINDS.join(", ")
                        ),
                    )),
                })
                .transpose()?,
            tag: self
                .tag
                .as_deref()
                .map(crate::store::Tag::parse)
                .transpose()
                .map_err(|e| invalid("tag", e).limit(crate::store::tagged::MAX_TAG as u64))?,
            cursor,
            limit,
        })
    }
}

/// A tenant's budget as a surface sets it (`PUT /api/v1/tenants/{id}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetBody {
    /// Dollars, 0..=1,000,000,000; `null` removes the limit.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub budget_usd: Option<f64>,
}

/// What draining or uncordoning a bot did (`POST /api/v1/bots/{id}/drain`,
/// `/uncordon`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct BotHold {
    pub bot: String,
    /// Whether it is drained now.
    pub cordoned: bool,
    /// Whether this request changed that (a repeat changes nothing).
    pub changed: bool,
    /// The tickets that went back to the queue from its lane (a drain),
    /// each to run as a new attempt on another bot.
    pub requeued: Vec<String>,
    /// The attempts it has taken, which finish on it.
    pub held: u32,
}

impl BotHold {
    /// Drains the bot named `id` (a repeat answers `changed: false`): what
    /// `POST /api/v1/bots/{id}/drain` and the desktop answer. Refused as
    /// not found for a bot no one knows, as an illegal transition for the
    /// last live bot of a skill or one that is not live.
    pub async fn drain(
        controller: &crate::controller::Controller,
        id: &str,
    ) -> Result<BotHold, ApiError> {
        use crate::controller::Drained;
        let bot = crate::ticket::BotId::parse(id)?;
        let drained = controller.drain_bot(&bot).await?;
        if let Some((unknown, why)) = drained.refusal(id) {
            let kind = if unknown {
                ErrorKind::NotFound
            } else {
                ErrorKind::IllegalTransition
            };
            return Err(ApiError::new(kind, why));
        }
        let (changed, requeued, held) = match drained {
            Drained::Drained { requeued, held } => (true, requeued, held),
            Drained::Already { held } => (false, Vec::new(), held),
            _ => (false, Vec::new(), 0),
        };
        Ok(BotHold {
            bot: id.to_owned(),
            cordoned: true,
            changed,
            requeued: requeued.iter().map(|t| t.to_string()).collect(),
            held,
        })
    }

    /// Lets the bot named `id` take work again: what `POST
    /// /api/v1/bots/{id}/uncordon` and the desktop answer.
    pub async fn uncordon(
        controller: &crate::controller::Controller,
        id: &str,
    ) -> Result<BotHold, ApiError> {
        let bot = crate::ticket::BotId::parse(id)?;
        let Some((changed, held)) = controller.uncordon_bot(&bot).await? else {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                format!("no bot {id} is known to this controller"),
            ));
        };
        Ok(BotHold {
            bot: id.to_owned(),
            cordoned: false,
            changed,
            requeued: Vec::new(),
            held,
        })
    }
}

/// What draining or uncordoning a node did (`POST
/// /api/v1/nodes/{id}/drain`, `/uncordon`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct NodeHold {
    pub node: String,
    /// Whether its bots are drained now.
    pub cordoned: bool,
    /// Whether this request changed that (a repeat changes nothing).
    pub changed: bool,
    /// Its bots this touched: every live one (a drain), every one (an
    /// uncordon).
    pub bots: Vec<String>,
    /// The tickets that went back to the queue from their lanes (a
    /// drain), each to run as a new attempt on another node's bot.
    pub requeued: Vec<String>,
    /// The attempts its bots have taken, which finish on them.
    pub held: u32,
}

/// A node ordered to restart (`POST /api/v1/nodes/{id}/restart`): it
/// stops as on SIGTERM, what its bots held goes back to the queue, and it
/// starts again under its name as a new run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct NodeRestarted {
    pub node: String,
    /// The run ordered to stop (a UUIDv7; the next one sorts after it).
    pub run: String,
    /// Its live bots when the order went.
    pub bots: Vec<String>,
    /// The attempts they held, requeued as it stops.
    pub held: u32,
}

/// A tenant as the directory lists it (`GET /api/v1/tenants`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct TenantView {
    pub id: crate::ticket::TenantId,
    /// `None`: no limit.
    #[specta(type = Option<specta_typescript::Number>)]
    pub budget_nusd: Option<i64>,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub created_at_ms: crate::clock::UnixMs,
    /// Whether it is paused: its tickets are admitted and kept, not
    /// routed, until it is resumed.
    pub paused: bool,
}

/// What pausing or resuming a tenant did (`POST
/// /api/v1/tenants/{id}/pause`, `/resume`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct TenantHold {
    pub tenant: String,
    /// Whether it is paused now: its tickets are admitted and kept, not
    /// routed; what was routed or running finishes.
    pub paused: bool,
    /// Whether this request changed that (a repeat changes nothing).
    pub changed: bool,
}

/// Which grants: `bot` to list one bot's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GrantQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<crate::ticket::BotId>)]
    pub bot: Option<String>,
}

/// The grant `DELETE /api/v1/grants?id=` revokes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RevokeQuery {
    #[param(value_type = uuid::Uuid)]
    pub id: String,
}

/// A page of the audit trail or the effect ledger: one ticket's, or the
/// newest `limit` (1..=5000, 200 if absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TrailQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<crate::ticket::TicketId>)]
    pub ticket: Option<String>,
    /// 1..=5000; 200 if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 5000)]
    pub limit: Option<String>,
}

impl TrailQuery {
    /// The ticket and the limit, checked; a refusal names its field.
    pub fn parse(&self) -> Result<(Option<crate::ticket::TicketId>, u32), ApiError> {
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

/// Which findings: by state (open, suppressed, resolved) and source, and
/// how many.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindingsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<crate::security::FindingState>)]
    pub state: Option<String>,
    /// `oshal`, or the scanner an imported SARIF run came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(min_length = 1, max_length = 128, pattern = "^[^\\u0000]*$")]
    pub source: Option<String>,
    /// 1..=5000; every finding if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 5000)]
    pub limit: Option<String>,
}

/// The envelope errors travel in.
#[derive(Debug, Clone, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ApiError,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            field: None,
            limit: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn limit(mut self, limit: u64) -> Self {
        self.limit = Some(limit);
        self
    }
}
