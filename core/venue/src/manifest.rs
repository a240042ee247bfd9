//! The connector a desk reaches the venue through: `venue-paper`, its
//! operations and the scopes each needs. `oshal venue init` signs it with a
//! publisher key of its own for the venue's URL; the operator trusts that
//! key (`--trust-publishers`) and loads the manifest (`--connectors-dir`),
//! and files the venue's API key with the broker.

use serde_json::{Value, json};

/// The connector's id.
pub const CONNECTOR: &str = "venue-paper";
/// The operation that submits an order (a write, reconciled by
/// [`FIND_BY_KEY`]).
pub const SUBMIT_ORDER: &str = "submit_order";
/// The operation that reads an order's report.
pub const GET_ORDER: &str = "get_order";
/// The operation that lists an account's orders and reports.
pub const LIST_ORDERS: &str = "list_orders";
/// The operation that finds an order by the idempotency key it was sent with.
pub const FIND_BY_KEY: &str = "find_order_by_key";

/// The manifest of the venue at `url` (`http://127.0.0.1:7412`), unsigned.
pub fn manifest(url: &str) -> Value {
    let id = json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"});
    let decimal = json!({"type": "string", "pattern": "^[0-9]{1,18}(\\.[0-9]{1,9})?$"});
    let read = |op: &str, path: &str, params: Value, summary: &str| {
        json!({
            "id": op, "method": "GET", "path": path, "params": params,
            "scopes": ["orders:read"], "effect": "read", "summary": summary,
        })
    };
    json!({
        "id": CONNECTOR,
        "version": "1.0.0",
        "name": "Oshal paper venue",
        "category": "finance",
        "base_url": format!("{}/v1", url.trim_end_matches('/')),
        "auth": {"kind": "api_key", "header": "X-Api-Key"},
        "operations": [
            {
                "id": SUBMIT_ORDER,
                "method": "POST",
                "path": "/accounts/{account}/orders",
                "params": {
                    "type": "object",
                    "properties": {
                        "account": id,
                        "client_order_id": id,
                        "instrument": {"type": "string", "pattern": "^[A-Z0-9.]{1,64}$"},
                        "seed": {"type": "integer", "minimum": 0},
                        "ts_ms": {"type": "integer", "minimum": 0},
                        "side": {"type": "string", "enum": ["BUY", "SELL"]},
                        "quantity": decimal,
                        "price": decimal,
                        "time_in_force": {"type": "string", "enum": ["IOC", "FOK"]},
                        "post_only": {"type": "boolean"}
                    },
                    "required": ["account", "client_order_id", "instrument", "seed", "ts_ms",
                                 "side", "quantity", "time_in_force"],
                    "additionalProperties": false
                },
                "scopes": ["orders:read", "orders:write"],
                "effect": "write",
                "reconcile": FIND_BY_KEY,
                "summary": "Submit an order to the paper venue"
            },
            read(
                GET_ORDER,
                "/accounts/{account}/orders/{client_order_id}",
                json!({
                    "type": "object",
                    "properties": {"account": id, "client_order_id": id},
                    "required": ["account", "client_order_id"],
                    "additionalProperties": false
                }),
                "Read an order's report",
            ),
            read(
                LIST_ORDERS,
                "/accounts/{account}/orders",
                json!({
                    "type": "object",
                    "properties": {"account": id},
                    "required": ["account"],
                    "additionalProperties": false
                }),
                "List an account's orders and reports",
            ),
            read(
                FIND_BY_KEY,
                "/orders/by-key/{idempotency_key}",
                json!({
                    "type": "object",
                    "properties": {"idempotency_key": {"type": "string", "minLength": 1, "maxLength": 255}},
                    "required": ["idempotency_key"],
                    "additionalProperties": false
                }),
                "Find an order by the idempotency key it was sent with",
            ),
        ]
    })
}
