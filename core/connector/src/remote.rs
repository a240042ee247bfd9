//! Tool calls across processes: how a bot on a fleet node reaches the
//! controller's connector runtime.
//!
//! A node holds no credential, no grant and no database: its bots' tool
//! calls travel to the controller, which runs the one shared runtime (gate,
//! broker, effect ledger) for the whole fleet. Over Redis, as everything
//! else between them does:
//! - a bot appends its [`ToolRequest`] to `P:tools`, read by the controller
//!   through a consumer group;
//! - the controller first asks its scheduler whether that bot holds that
//!   attempt of the ticket now ([`Verify`]). If not, the call is refused
//!   and audited, never run: a node cannot make calls for tickets it was
//!   not given, nor for another tenant. The ticket's tenant comes from the
//!   controller, never from the node;
//! - the answer goes to the node's own stream, `P:tools:<node>`, where one
//!   reader hands it to the waiting bot.
//!
//! Requests and answers are acknowledged and deleted as soon as they are
//! read: each is handled at most once. A lost one costs the ticket a retry,
//! never a repeated side effect, since the effect ledger keeps every write
//! once. When Redis loses the node's answer stream (it restarted empty), the
//! node fails every call still waiting at once, as retryable, rather than
//! let each wait out [`CALL_TIMEOUT`]; a call lost some other way (a crash
//! of the controller) costs the bot that timeout. A cancel
//! revokes the ticket's tokens and stops the controller's call, as in local
//! mode.

use redis::Client;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::StreamReadReply;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;

use super::Connectors;
use super::call::CallRef;
use super::runtime::{ToolError, ToolRequest, ToolResult};
use crate::cancel::CancelRegistry;
use crate::lane::redis::{self as rl, Keys};
use crate::ticket::TenantId;

/// How long a bot waits for the controller's answer: a read's three tries
/// and a write's reconcile fit well within it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(90);
/// Tool calls the controller runs at once for the whole fleet.
pub const MAX_CALLS_IN_FLIGHT: usize = 64;
/// Entries kept on a call or answer stream (approximately) if nobody reads.
const STREAM_MAXLEN: usize = 10_000;
const CONTROLLER_GROUP: &str = "controller";
const NODE_GROUP: &str = "node";
/// The one stream field: the JSON of a request or an answer.
const FIELD: &str = "t";

/// Where a bot's tool calls run.
#[derive(Debug, Clone)]
pub enum Tools {
    /// In this process (local mode).
    Local(Connectors),
    /// At the fleet's controller.
    Remote(Arc<RemoteTools>),
}

impl Tools {
    pub async fn call(
        &self,
        req: &ToolRequest,
        cancel: &CancellationToken,
    ) -> Result<ToolResult, ToolError> {
        match self {
            Tools::Local(c) => c.runtime().call(req, cancel).await,
            Tools::Remote(r) => r.call(req, cancel).await,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct WireCall {
    id: String,
    node: String,
    request: ToolRequest,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireAnswer {
    id: String,
    answer: Answer,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Ok(ToolResult),
    Err {
        message: String,
        retryable: bool,
        cancelled: bool,
        #[serde(default)]
        dry_run: bool,
        /// A write to a built-in that needs an approved heal: the bot hears
        /// [`ToolError::ApprovalRequired`], as it would in process.
        #[serde(default)]
        approval_required: bool,
    },
}

impl From<Result<ToolResult, ToolError>> for Answer {
    fn from(r: Result<ToolResult, ToolError>) -> Self {
        match r {
            Ok(result) => Answer::Ok(result),
            Err(e) => Answer::Err {
                retryable: e.retryable(),
                cancelled: matches!(e, ToolError::Cancelled),
                dry_run: matches!(e, ToolError::DryRun(_)),
                approval_required: matches!(e, ToolError::ApprovalRequired(_)),
                message: match e {
                    ToolError::DryRun(why) | ToolError::ApprovalRequired(why) => why,
                    e => e.to_string(),
                },
            },
        }
    }
}

impl From<Answer> for Result<ToolResult, ToolError> {
    fn from(a: Answer) -> Self {
        match a {
            Answer::Ok(result) => Ok(result),
            Answer::Err {
                cancelled: true, ..
            } => Err(ToolError::Cancelled),
            Answer::Err {
                dry_run: true,
                message,
                ..
            } => Err(ToolError::DryRun(message)),
            Answer::Err {
                approval_required: true,
                message,
                ..
            } => Err(ToolError::ApprovalRequired(message)),
            Answer::Err {
                message, retryable, ..
            } => Err(ToolError::Remote { message, retryable }),
        }
    }
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Answer>>>>;

/// A node's side: sends its bots' calls, hands each answer to its caller.
#[derive(Debug)]
pub struct RemoteTools {
    conn: ConnectionManager,
    calls: String,
    node: String,
    waiting: Waiting,
}

impl RemoteTools {
    /// Starts the reader of `node`'s answer stream (until `shutdown`).
    pub fn start(
        client: &Client,
        conn: ConnectionManager,
        keys: &Keys,
        node: &str,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let waiting: Waiting = Arc::default();
        let (handed, stranded) = (waiting.clone(), waiting.clone());
        spawn_taker(
            client,
            conn.clone(),
            keys.tool_replies(node),
            NODE_GROUP,
            shutdown,
            move || {
                // Every answer on the stream went with it.
                let lost: Vec<_> = lock(&stranded).drain().collect();
                if !lost.is_empty() {
                    tracing::warn!(
                        calls = lost.len(),
                        "the tool answer stream was lost; failing the calls waiting on it"
                    );
                }
                for (_, tx) in lost {
                    let _ = tx.send(Answer::Err {
                        message: "the call's answer was lost with the node's answer stream (Redis restarted empty?); it may or may not have run".into(),
                        retryable: true,
                        cancelled: false,
                        dry_run: false,
                        approval_required: false,
                    });
                }
            },
            move |raw| {
                let Ok(wire) = serde_json::from_slice::<WireAnswer>(&raw) else {
                    tracing::error!("an unreadable tool answer was dropped");
                    return;
                };
                let waiter = lock(&handed).remove(&wire.id);
                // No waiter: the bot gave up (timeout, cancel) already.
                if let Some(tx) = waiter {
                    let _ = tx.send(wire.answer);
                }
            },
        );
        Arc::new(Self {
            conn,
            calls: keys.tool_calls(),
            node: node.to_owned(),
            waiting,
        })
    }

    /// Sends `req` to the controller and waits for its answer (or `cancel`,
    /// or [`CALL_TIMEOUT`]).
    pub async fn call(
        &self,
        req: &ToolRequest,
        cancel: &CancellationToken,
    ) -> Result<ToolResult, ToolError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(id.clone(), tx);
        let _forget = Forget(&self.waiting, &id);
        let wire = serde_json::to_vec(&WireCall {
            id: id.clone(),
            node: self.node.clone(),
            request: req.clone(),
        })
        .map_err(|e| ToolError::Transport(format!("encoding the call: {e}")))?;
        let sent: redis::RedisResult<()> = redis::cmd("XADD")
            .arg(&self.calls)
            .arg("MAXLEN")
            .arg("~")
            .arg(STREAM_MAXLEN)
            .arg("*")
            .arg(FIELD)
            .arg(wire)
            .query_async(&mut self.conn.clone())
            .await;
        sent.map_err(|e| ToolError::Transport(format!("sending the call to the controller: {e}")))?;
        tokio::select! {
            _ = cancel.cancelled() => Err(ToolError::Cancelled),
            answer = tokio::time::timeout(CALL_TIMEOUT, rx) => match answer {
                Ok(Ok(answer)) => answer.into(),
                Ok(Err(_)) => Err(ToolError::Transport("the node is shutting down".into())),
                Err(_) => Err(ToolError::Transport(format!(
                    "the controller did not answer the call within {CALL_TIMEOUT:?}"
                ))),
            },
        }
    }
}

/// Removes a call's waiter however the call ends.
struct Forget<'a>(&'a Waiting, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        lock(self.0).remove(self.1);
    }
}

fn lock(w: &Waiting) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Answer>>> {
    w.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asks the controller's scheduler whether `call`'s bot holds that attempt
/// of its ticket now; answers the ticket's tenant, or why not.
pub type Verify = Arc<
    dyn Fn(CallRef) -> futures::future::BoxFuture<'static, Result<TenantId, String>> + Send + Sync,
>;

/// The controller's side: reads every node's calls, checks each against
/// `verify`, runs it on `connectors` (under a token `inflight` cancels) and
/// answers the node.
pub fn spawn_server(
    client: &Client,
    conn: ConnectionManager,
    keys: &Keys,
    connectors: Connectors,
    verify: Verify,
    inflight: Arc<CancelRegistry>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let slots = Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT));
    let keys = keys.clone();
    let answers = conn.clone();
    spawn_taker(
        client,
        conn,
        keys.tool_calls(),
        CONTROLLER_GROUP,
        shutdown,
        // Calls lost with the stream: their nodes fail them when they find
        // their own answer streams gone.
        || {},
        move |raw| {
            let Ok(wire) = serde_json::from_slice::<WireCall>(&raw) else {
                tracing::error!("an unreadable tool call was dropped");
                return;
            };
            // The node names the stream it is answered on: a name, not a path.
            if crate::ticket::check_name("node", &wire.node).is_err() {
                tracing::error!("a tool call from a node with an invalid name was dropped");
                return;
            }
            let (connectors, verify, inflight) =
                (connectors.clone(), verify.clone(), inflight.clone());
            let (slots, mut conn) = (slots.clone(), answers.clone());
            let to = keys.tool_replies(&wire.node);
            tokio::spawn(async move {
                let Ok(_slot) = slots.acquire_owned().await else {
                    return;
                };
                let answer = run(&connectors, &verify, &inflight, wire.request).await;
                let Ok(json) = serde_json::to_vec(&WireAnswer {
                    id: wire.id,
                    answer,
                }) else {
                    return;
                };
                let sent: redis::RedisResult<()> = redis::cmd("XADD")
                    .arg(&to)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(STREAM_MAXLEN)
                    .arg("*")
                    .arg(FIELD)
                    .arg(json)
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(node = %wire.node, error = %e, "could not answer a tool call");
                }
            });
        },
    )
}

/// One call: bound to the bot's attempt, or refused and audited.
async fn run(
    connectors: &Connectors,
    verify: &Verify,
    inflight: &CancelRegistry,
    mut request: ToolRequest,
) -> Answer {
    let ticket = request.call.ticket;
    // Watch for a cancel before checking, so none slips in between.
    let cancel = inflight.begin(ticket);
    let checked = verify(request.call.clone()).await;
    let answer = match checked {
        Err(reason) => {
            request.call.tenant = None;
            let reason = format!("refused before the gate: {reason}");
            if let Err(e) = connectors.refuse(&request.call, &reason).await {
                tracing::error!(error = %e, "could not audit a refused tool call");
            }
            Answer::Err {
                message: format!("denied: {reason}"),
                retryable: false,
                cancelled: false,
                dry_run: false,
                approval_required: false,
            }
        }
        Ok(tenant) => {
            request.call.tenant = Some(tenant);
            connectors.runtime().call(&request, &cancel).await.into()
        }
    };
    inflight.end(ticket);
    answer
}

/// Reads `key` through `group` until `shutdown`, handing each entry's
/// payload to `handle`. Each entry is acknowledged and deleted as soon as it
/// is read. The group is created at the start of the stream, so nothing
/// appended before the reader first ran is missed, and created again if
/// Redis lost it (after calling `lost`); a broken connection is opened again.
fn spawn_taker(
    client: &Client,
    mut conn: ConnectionManager,
    key: String,
    group: &'static str,
    shutdown: CancellationToken,
    mut lost: impl FnMut() + Send + 'static,
    mut handle: impl FnMut(Vec<u8>) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let client = client.clone();
    tokio::spawn(async move {
        let mut reader: Option<MultiplexedConnection> = None;
        let mut grouped = false;
        let pause = async || {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        };
        while !shutdown.is_cancelled() {
            if !grouped {
                match rl::ensure_group(&mut conn, &key, group).await {
                    Ok(()) => grouped = true,
                    Err(e) => {
                        tracing::warn!(stream = %key, error = %e, "tool stream unavailable");
                        pause().await;
                        continue;
                    }
                }
            }
            let r = match &mut reader {
                Some(r) => r,
                None => match rl::blocking_connection(&client).await {
                    Ok(c) => reader.insert(c),
                    Err(e) => {
                        tracing::warn!(stream = %key, error = %e, "tool stream unavailable");
                        pause().await;
                        continue;
                    }
                },
            };
            let read = tokio::select! {
                biased;
                _ = shutdown.cancelled() => return,
                r = take(r, &mut conn, &key, group) => r,
            };
            match read {
                Ok(entries) => entries.into_iter().for_each(&mut handle),
                Err(e) if rl::is_nogroup(&e) => {
                    lost();
                    grouped = false;
                }
                Err(e) => {
                    tracing::warn!(stream = %key, error = %e, "tool stream read failed");
                    reader = None;
                    pause().await;
                }
            }
        }
    })
}

/// One blocking read of up to 64 new entries, then one pipelined XACK and
/// XDEL of all of them.
async fn take(
    reader: &mut MultiplexedConnection,
    conn: &mut ConnectionManager,
    key: &str,
    group: &str,
) -> redis::RedisResult<Vec<Vec<u8>>> {
    let reply: Option<StreamReadReply> = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(group)
        .arg("COUNT")
        .arg(64)
        .arg("BLOCK")
        .arg(1000)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query_async(reader)
        .await?;
    let entries: Vec<_> = reply
        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
        .unwrap_or_default();
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
    redis::pipe()
        .cmd("XACK")
        .arg(key)
        .arg(group)
        .arg(&ids)
        .ignore()
        .cmd("XDEL")
        .arg(key)
        .arg(&ids)
        .ignore()
        .query_async::<()>(conn)
        .await?;
    Ok(entries
        .iter()
        .filter_map(|e| rl::field(&e.map, FIELD).map(<[u8]>::to_vec))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lane::redis::testing::TestRedis;
    use crate::ticket::{BotId, TicketId};
    use std::time::Instant;

    /// Redis restarting empty takes the node's answer stream with it: the
    /// call waiting on it fails at once, retryable, instead of after
    /// `CALL_TIMEOUT`.
    #[tokio::test]
    async fn a_call_whose_answer_stream_is_lost_fails_at_once_as_retryable() {
        let redis = TestRedis::new().await;
        let shutdown = CancellationToken::new();
        let tools = RemoteTools::start(
            &redis.client,
            redis.conn.clone(),
            &redis.keys,
            "n1",
            shutdown.clone(),
        );
        // The answer stream and its group exist once the reader has run.
        let replies = redis.keys.tool_replies("n1");
        let mut conn = redis.conn.clone();
        while !redis::cmd("EXISTS")
            .arg(&replies)
            .query_async::<bool>(&mut conn)
            .await
            .unwrap()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let request = ToolRequest {
            call: CallRef {
                bot: BotId::parse("bot-1").unwrap(),
                tenant: None,
                ticket: TicketId::new(),
                attempt: 1,
                connector: "shopfront".into(),
                operation: "get_order".into(),
            },
            params: serde_json::json!({"id": "o-1"}),
            call_index: 0,
            dry_run: false,
        };
        let started = Instant::now();
        let call = tools.call(&request, &shutdown);
        let lose = async {
            // No controller answers; the call is on its way, then Redis
            // loses everything under the prefix.
            tokio::time::sleep(Duration::from_millis(100)).await;
            redis.flush().await;
        };
        let (answer, ()) = tokio::join!(call, lose);
        let waited = started.elapsed();
        let e = answer.expect_err("no answer can come");
        assert!(e.retryable(), "{e}");
        assert!(e.to_string().contains("answer stream"), "{e}");
        assert!(waited < CALL_TIMEOUT / 10, "waited {waited:?}");
        assert!(lock(&tools.waiting).is_empty());
        shutdown.cancel();
        redis.cleanup().await;
    }

    /// A built-in's write refused for want of an approval reaches a bot on
    /// a node as `ApprovalRequired`, not as a plain remote error.
    #[tokio::test]
    async fn approval_required_crosses_from_the_controller_to_a_node() {
        use crate::testing::{OPS, Rig, call as call_of, request};
        let rig = Rig::new().await;
        let redis = TestRedis::new().await;
        let shutdown = CancellationToken::new();
        // The controller's scheduler says the bot holds the ticket, for the
        // default tenant.
        let verify: Verify = Arc::new(
            |_: CallRef| -> futures::future::BoxFuture<'static, Result<TenantId, String>> {
                Box::pin(async { Ok(TenantId::default_tenant()) })
            },
        );
        let server = spawn_server(
            &redis.client,
            redis.conn.clone(),
            &redis.keys,
            rig.connectors.clone(),
            verify,
            Arc::new(CancelRegistry::default()),
            shutdown.clone(),
        );
        let tools = RemoteTools::start(
            &redis.client,
            redis.conn.clone(),
            &redis.keys,
            "n1",
            shutdown.clone(),
        );
        let write = request(
            call_of("bot-01", TicketId::new(), OPS, "restart"),
            serde_json::json!({"service": "api"}),
        );
        let e = tools.call(&write, &shutdown).await.unwrap_err();
        match &e {
            ToolError::ApprovalRequired(why) => {
                assert!(why.contains("oshal-ops.restart"), "{why}");
                assert!(why.contains("approved heal"), "{why}");
            }
            other => panic!("expected approval_required, got {other:?}"),
        }
        assert!(!e.retryable());
        assert_eq!(rig.platform.writes(), 0);
        shutdown.cancel();
        let _ = server.await;
        redis.cleanup().await;

        // An answer from a controller that predates the field still reads.
        let old = r#"{"err":{"message":"denied: no","retryable":false,"cancelled":false}}"#;
        let answer: Answer = serde_json::from_str(old).unwrap();
        let read: Result<ToolResult, ToolError> = answer.into();
        assert!(matches!(read, Err(ToolError::Remote { .. })), "{read:?}");
    }
}
