//! The venue's HTTP and WebSocket API, every route but `/v1/health` behind
//! an API key (`X-Api-Key`):
//!
//! - `POST /v1/accounts/{account}/orders`: a [`WireOrder`]; `201` with the
//!   [`WireReport`], or `200` with the first one when the same order comes
//!   again under its client order id (a retry after a lost answer fills
//!   nothing twice); `409 DUPLICATE_CLIENT_ORDER_ID` for another order under
//!   a used id. An `Idempotency-Key` is kept with the order.
//! - `GET /v1/accounts/{account}/orders/{client_order_id}`: its report.
//! - `GET /v1/accounts/{account}/orders`: every order with its report, in
//!   the order taken (what a reconciliation compares).
//! - `GET /v1/orders/by-key/{idempotency_key}`: the report of the order
//!   sent with that key (how a connector settles a write whose answer it
//!   lost, without sending it again).
//! - `GET /v1/accounts/{account}/stream`: a WebSocket of the account's
//!   reports as the venue makes them.
//!
//! Errors are `{"error": {"code", "field", "message"}}`; a field is named
//! as the body writes it (`quantity`, `client_order_id`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use oshal_kernel::clock::{Clock, SystemClock};
use oshal_trading::market;
use oshal_trading::venue::wire::{WireError, WireOrder, WireReport, check_id};
use serde::Serialize;
use serde_json::json;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::markets::Markets;
use crate::store::{StoreError, Stored, VenueStore};

/// The header that carries the API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// The longest idempotency key kept.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;
/// The largest order body read.
const MAX_BODY: usize = 16 * 1024;

/// A report as the stream sends it.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub account: String,
    pub report: WireReport,
}

/// The venue: its store, its markets and how deep its book is.
#[derive(Clone)]
pub struct PaperVenue {
    store: VenueStore,
    markets: Markets,
    depth_levels: u32,
    /// One order decided at a time: the venue order ids of an account are
    /// numbered in the order its orders are taken.
    deciding: Arc<tokio::sync::Mutex<()>>,
    events: broadcast::Sender<Event>,
}

impl std::fmt::Debug for PaperVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaperVenue")
            .field("depth_levels", &self.depth_levels)
            .finish_non_exhaustive()
    }
}

impl PaperVenue {
    /// A venue over `store` whose book shows `depth_levels` ticks beyond
    /// the quote on each side (the paper desk's default is 3).
    pub fn new(store: VenueStore, depth_levels: u32) -> PaperVenue {
        PaperVenue {
            store,
            markets: Markets::default(),
            depth_levels,
            deciding: Arc::new(tokio::sync::Mutex::new(())),
            events: broadcast::channel(1_024).0,
        }
    }

    pub fn store(&self) -> &VenueStore {
        &self.store
    }

    /// Takes `order` for `account`: the first answer again for an order
    /// already taken (`false`), or a new report (`true`).
    pub async fn submit(
        &self,
        account: &str,
        order: WireOrder,
        idempotency_key: Option<String>,
    ) -> Result<(bool, WireReport), ApiError> {
        check_id("account", account)?;
        let model = market::listed(&order.instrument).ok_or_else(|| ApiError::Invalid {
            code: "UNKNOWN_INSTRUMENT",
            field: "instrument".into(),
            reason: format!(
                "{:?} is not listed here; the venue lists {}",
                order.instrument,
                market::sim_models()
                    .iter()
                    .map(|m| m.instrument.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        let checked = order.check(&model.instrument)?;
        let _one = self.deciding.lock().await;
        if let Some(key) = &idempotency_key
            && let Some(first) = self.store.find_by_key(key).await?
        {
            if first.account == account && first.order == order {
                return Ok((false, first.report));
            }
            return Err(ApiError::Conflict {
                code: "IDEMPOTENCY_KEY_REUSED",
                field: "Idempotency-Key".into(),
                reason: format!("{key:?} was sent with another order"),
            });
        }
        if let Some(first) = self.store.find(account, &order.client_order_id).await? {
            if first.order == order {
                return Ok((false, first.report));
            }
            return Err(ApiError::Conflict {
                code: "DUPLICATE_CLIENT_ORDER_ID",
                field: "client_order_id".into(),
                reason: format!(
                    "{:?} is already used by another order of account {account:?}",
                    order.client_order_id
                ),
            });
        }
        let seq = self.store.count(account).await? + 1;
        let quote = self.markets.quote(&model, order.seed, order.ts_ms).await;
        let report = oshal_trading::venue::answer(
            &model.instrument,
            self.depth_levels,
            format!("V-{seq}"),
            &checked,
            &quote,
        );
        let stored = Stored {
            account: account.to_owned(),
            order,
            report: WireReport::from(&report),
            idempotency_key,
        };
        self.store
            .insert(&stored, seq, SystemClock.now_ms())
            .await?;
        let _ = self.events.send(Event {
            account: stored.account,
            report: stored.report.clone(),
        });
        Ok((true, stored.report))
    }
}

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("an API key is required in X-Api-Key, and this one is not known")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{field}: {reason}")]
    Invalid {
        code: &'static str,
        field: String,
        reason: String,
    },
    #[error("{field}: {reason}")]
    Conflict {
        code: &'static str,
        field: String,
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        ApiError::Invalid {
            code: "INVALID_FIELD",
            field: e.field,
            reason: e.reason,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", None),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND", None),
            ApiError::Invalid { code, field, .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, *code, Some(field.clone()))
            }
            ApiError::Conflict { code, field, .. } => {
                (StatusCode::CONFLICT, *code, Some(field.clone()))
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "the venue's store failed");
                (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", None)
            }
        };
        let body = json!({"error": {"code": code, "field": field, "message": self.to_string()}});
        (status, axum::Json(body)).into_response()
    }
}

/// The venue's routes.
pub fn router(venue: PaperVenue) -> Router {
    Router::new()
        .route(
            "/v1/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route(
            "/v1/accounts/{account}/orders",
            get(list_orders).post(submit_order),
        )
        .route(
            "/v1/accounts/{account}/orders/{client_order_id}",
            get(get_order),
        )
        .route("/v1/orders/by-key/{idempotency_key}", get(find_by_key))
        .route("/v1/accounts/{account}/stream", get(stream))
        .with_state(venue)
}

/// Serves the venue on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    venue: PaperVenue,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(venue))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn authorize(venue: &PaperVenue, headers: &HeaderMap) -> Result<(), ApiError> {
    let key = headers
        .get(API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthorized)?;
    if venue.store.accepts(key).await? {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The request's `Idempotency-Key`, if it carries one.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = |reason: String| ApiError::Invalid {
        code: "INVALID_FIELD",
        field: "Idempotency-Key".into(),
        reason,
    };
    let text = value
        .to_str()
        .map_err(|_| bad("must be visible ASCII".into()))?;
    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY {
        return Err(bad(format!(
            "{} characters; a key has 1 to {MAX_IDEMPOTENCY_KEY}",
            text.len()
        )));
    }
    Ok(Some(text.to_owned()))
}

async fn submit_order(
    State(venue): State<PaperVenue>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    authorize(&venue, &headers).await?;
    let key = idempotency_key(&headers)?;
    if body.len() > MAX_BODY {
        return Err(ApiError::Invalid {
            code: "TOO_LARGE",
            field: "body".into(),
            reason: format!("{} bytes; the limit is {MAX_BODY}", body.len()),
        });
    }
    let order: WireOrder = {
        let de = &mut serde_json::Deserializer::from_slice(&body);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let inner = e.inner().to_string();
            let field = oshal_kernel::text::field_path(&e.path().to_string(), &inner);
            ApiError::Invalid {
                code: "INVALID_FIELD",
                field: if field.is_empty() || field == "." {
                    "body".into()
                } else {
                    field
                },
                reason: inner,
            }
        })?
    };
    let (new, report) = venue.submit(&account, order, key).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(report)).into_response())
}

async fn get_order(
    State(venue): State<PaperVenue>,
    Path((account, client_order_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<axum::Json<WireReport>, ApiError> {
    authorize(&venue, &headers).await?;
    let found = venue.store.find(&account, &client_order_id).await?;
    found
        .map(|s| axum::Json(s.report))
        .ok_or_else(|| ApiError::NotFound(format!("order {client_order_id:?} of {account:?}")))
}

async fn list_orders(
    State(venue): State<PaperVenue>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    authorize(&venue, &headers).await?;
    let orders = venue.store.list(&account).await?;
    let orders: Vec<_> = orders
        .into_iter()
        .map(|s| json!({"order": s.order, "report": s.report}))
        .collect();
    Ok(axum::Json(json!({"account": account, "orders": orders})))
}

async fn find_by_key(
    State(venue): State<PaperVenue>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> Result<axum::Json<WireReport>, ApiError> {
    authorize(&venue, &headers).await?;
    let found = venue.store.find_by_key(&key).await?;
    found
        .map(|s| axum::Json(s.report))
        .ok_or_else(|| ApiError::NotFound(format!("an order sent with key {key:?}")))
}

async fn stream(
    State(venue): State<PaperVenue>,
    Path(account): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    authorize(&venue, &headers).await?;
    check_id("account", &account)?;
    let events = venue.events.subscribe();
    Ok(upgrade.on_upgrade(move |socket| send_reports(socket, account, events)))
}

/// Sends `account`'s reports as the venue makes them; a client too slow
/// to keep up hears how many it missed and reads them by REST.
async fn send_reports(
    mut socket: WebSocket,
    account: String,
    mut events: broadcast::Receiver<Event>,
) {
    loop {
        let text = tokio::select! {
            event = events.recv() => match event {
                Ok(e) if e.account == account => json!({"report": e.report}).to_string(),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => json!({"lagged": missed}).to_string(),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
        };
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
}
