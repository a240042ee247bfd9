//! The venue over its real HTTP and WebSocket API on a loopback port, its
//! store in a temporary directory: keys, orders, the first answer again for
//! a retry, refusals by field, reconciliation reads, the stream, and a
//! restart that forgets nothing.

#![allow(clippy::unwrap_used)]

use futures::StreamExt;
use oshal_trading::book::TimeInForce;
use oshal_trading::market::{self, sim_models};
use oshal_trading::order::OrderSide;
use oshal_trading::venue::wire::{WireOrder, WireReport};
use oshal_trading::venue::{Venue, VenueOrder};
use oshal_venue::{PaperVenue, VenueStore};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const KEY: &str = "k-0123456789abcdef";

struct Running {
    url: String,
    http: reqwest::Client,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(dir: &std::path::Path) -> Running {
        let store = VenueStore::open(dir).await.unwrap();
        store.add_key(KEY, 0).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                oshal_venue::serve(listener, PaperVenue::new(store, 3), stop)
                    .await
                    .unwrap();
            }
        });
        Running {
            url,
            http: reqwest::Client::new(),
            stop,
            task,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(k) = key {
            req = req.header("X-Api-Key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body), Some(KEY))
            .await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None, Some(KEY)).await
    }
}

fn order(id: &str, quantity: &str) -> Value {
    json!({
        "client_order_id": id, "instrument": "ETHUSD.SIM", "seed": 7,
        "ts_ms": 125_000, "side": "BUY", "quantity": quantity, "time_in_force": "IOC"
    })
}

#[tokio::test]
async fn the_venue_takes_an_order_once_answers_a_retry_the_same_and_refuses_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let venue = Running::start(dir.path()).await;

    let (status, _) = venue.get("/v1/health").await;
    assert_eq!(status, 200);
    for key in [None, Some("wrong")] {
        let (status, e) = venue
            .send(
                reqwest::Method::POST,
                "/v1/accounts/ds-1/orders",
                Some(order("O-1", "0.100")),
                key,
            )
            .await;
        assert_eq!(status, 401, "{e}");
        assert_eq!(e["error"]["code"], "UNAUTHORIZED");
    }

    let mut ws = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}/v1/accounts/ds-1/stream",
            venue.url.replace("http", "ws")
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("X-Api-Key", KEY.parse().unwrap());
        tokio_tungstenite::connect_async(req).await.unwrap().0
    };

    let (status, first) = venue
        .post("/v1/accounts/ds-1/orders", order("O-1", "0.100"))
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["venue_order_id"], "V-1");
    assert_eq!(first["ts_ms"], 125_000);

    // The answer the desk's own venue gives the same order at the same quote.
    let model = sim_models().remove(0);
    let q = market::seconds(7, model.clone(), 126).remove(125);
    let mut in_process = Venue::new(model.instrument.clone(), 3);
    let expected = in_process
        .submit(
            VenueOrder {
                client_order_id: "O-1".into(),
                side: OrderSide::Buy,
                quantity: oshal_trading::fixed::Quantity::parse("q", "0.100", 3).unwrap(),
                price: None,
                time_in_force: TimeInForce::Ioc,
                post_only: false,
                expire_ms: None,
            },
            &q,
        )
        .unwrap();
    let wire: WireReport = serde_json::from_value(first.clone()).unwrap();
    assert_eq!(wire.parse(&model.instrument).unwrap(), expected);

    // The stream carried it.
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let streamed: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(streamed["report"], first);

    // A retry after a lost answer: the first answer, nothing taken twice.
    let (status, again) = venue
        .post("/v1/accounts/ds-1/orders", order("O-1", "0.100"))
        .await;
    assert_eq!((status, &again), (200, &first));
    let (status, e) = venue
        .post("/v1/accounts/ds-1/orders", order("O-1", "0.200"))
        .await;
    assert_eq!(status, 409);
    assert_eq!(e["error"]["code"], "DUPLICATE_CLIENT_ORDER_ID");
    assert_eq!(e["error"]["field"], "client_order_id");
    // Another account numbers its own orders.
    let (status, other) = venue
        .post("/v1/accounts/ds-2/orders", order("O-1", "0.200"))
        .await;
    assert_eq!(status, 201);
    assert_eq!(other["venue_order_id"], "V-1");

    // Each wrong field, refused by its name; nothing is taken.
    let mut cases = vec![
        (json!({"instrument": "DOGE.SIM"}), "instrument"),
        (json!({"quantity": "0.1005"}), "quantity"),
        (json!({"quantity": 5}), "quantity"),
        (json!({"ts_ms": 1_500}), "ts_ms"),
        (json!({"price": "1.001"}), "price"),
        (json!({"side": "SIDEWAYS"}), "side"),
        (json!({"quantity": null}), "quantity"),
        (
            json!({"time_in_force": "GTC", "price": "4000.00"}),
            "time_in_force",
        ),
        (json!({"leverage": 100}), "leverage"),
    ];
    cases.push((json!({"client_order_id": "../x"}), "client_order_id"));
    for (change, field) in cases {
        let mut body = order("O-9", "0.100");
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, e) = venue.post("/v1/accounts/ds-1/orders", body).await;
        assert_eq!(status, 422, "{change}: {e}");
        assert_eq!(e["error"]["field"], field, "{change}: {e}");
    }
    let (status, e) = venue
        .post("/v1/accounts/a%20b/orders", order("O-9", "0.100"))
        .await;
    assert_eq!(
        (status, e["error"]["field"].as_str()),
        (422, Some("account"))
    );
    let (status, e) = venue
        .send(
            reqwest::Method::POST,
            "/v1/accounts/ds-1/orders",
            None,
            Some(KEY),
        )
        .await;
    assert_eq!(status, 422, "{e}");

    // An idempotency key is kept with its order and found again by it.
    let keyed = |body: Value, key: &'static str| {
        venue
            .http
            .post(format!("{}/v1/accounts/ds-1/orders", venue.url))
            .header("X-Api-Key", KEY)
            .header("Idempotency-Key", key)
            .json(&body)
    };
    let r = keyed(order("O-2", "0.050"), "effect-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    let (status, found) = venue.get("/v1/orders/by-key/effect-1").await;
    assert_eq!((status, &found), (200, &second));
    let r = keyed(order("O-3", "0.050"), "effect-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "a key is one order's");
    let (status, _) = venue.get("/v1/orders/by-key/effect-2").await;
    assert_eq!(status, 404);

    // What a reconciliation reads.
    let (status, one) = venue.get("/v1/accounts/ds-1/orders/O-1").await;
    assert_eq!((status, &one), (200, &first));
    let (status, _) = venue.get("/v1/accounts/ds-1/orders/O-7").await;
    assert_eq!(status, 404);
    let (status, list) = venue.get("/v1/accounts/ds-1/orders").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["report"]["venue_order_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["V-1", "V-2"]);
    let _: WireOrder = serde_json::from_value(list["orders"][0]["order"].clone()).unwrap();

    // Restarted on the same store: the same answers, the numbering goes on.
    venue.stop().await;
    let venue = Running::start(dir.path()).await;
    let (status, again) = venue
        .post("/v1/accounts/ds-1/orders", order("O-1", "0.100"))
        .await;
    assert_eq!((status, &again), (200, &first));
    let (status, third) = venue
        .post("/v1/accounts/ds-1/orders", order("O-4", "0.100"))
        .await;
    assert_eq!(status, 201);
    assert_eq!(third["venue_order_id"], "V-3");
    venue.stop().await;

    // Only the key's hash is on disk.
    let db = std::fs::read(dir.path().join(oshal_venue::store::DB_FILE)).unwrap();
    assert!(!db.windows(KEY.len()).any(|w| w == KEY.as_bytes()));
}
