//! The shared connector runtime: one tool call, from the gate to the wire.
//!
//! For each call: the gate decides (and audits); the parameters are checked
//! against the operation's schema; the broker issues a token bound to this
//! call; then, per HTTP request, the token is exchanged for the credential,
//! which goes on that request only.
//!
//! Reads are retried (3 tries, on timeouts, transport errors and 5xx), each
//! try exchanging the token again, so a cancel (which revokes it) stops them.
//! Writes are sent once. Each has an idempotency key derived from (ticket,
//! connector, operation, call index) — the same on every attempt of the
//! ticket — sent as `Idempotency-Key` and recorded in the effect ledger as
//! `in_flight` *before* it is sent. A 2xx settles it `done`, a 4xx `failed`;
//! a timeout, a 5xx or a crash leaves it unknown. A later attempt that finds
//! it `done` returns the recorded response without sending; one that finds it
//! unknown reconciles first: through the operation's `reconcile` read (found:
//! `done`; 404: not applied, so send) or, when the manifest names none, by
//! sending again with the same key, which the outside system deduplicates.
//!
//! A built-in connector ([`crate::builtin`]) is served in process: the same
//! gate, retries, effect ledger, redaction and clipping, but its handler
//! answers instead of the broker and HTTP (no token, no credential). A
//! write to one the gate refuses for want of an approval answers
//! [`ToolError::ApprovalRequired`].

use oshal_kernel::name::Named;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::Registry;
use super::builtin::BuiltIn;
use super::gate::{CallRef, Gate};
use super::manifest::{Effect, Manifest, Operation};
use super::store::{ConnectorDb, EffectRow, EffectState, Settled};
use crate::broker::{Broker, BrokerError, ToolToken};
use crate::clock::SharedClock;
use crate::secrets::SecretRules;

/// Each HTTP request's limit.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries of a read.
pub const READ_TRIES: u32 = 3;
/// The most of a response body kept (and returned to the bot).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A bot's tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolRequest {
    pub call: CallRef,
    pub params: serde_json::Value,
    /// Which call of the ticket this is (0 for the first): part of a
    /// write's idempotency key.
    pub call_index: u32,
    /// A dry run: a write is refused before anything is sent (after the
    /// gate has decided, as for a real call); a read runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// What the outside system answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    pub connector: String,
    pub operation: String,
    pub status: u16,
    pub body: serde_json::Value,
    /// A write's idempotency key (its row in the effect ledger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    /// True if this result was recorded by an earlier attempt and not sent again.
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    #[error("denied: {0}")]
    Denied(String),
    /// A write to a built-in connector that no grant bound to the ticket
    /// allows: it needs an approved heal. Denied and audited as such; not
    /// retryable (another attempt needs the approval first).
    #[error("approval required: {0}")]
    ApprovalRequired(String),
    #[error("{field}: {reason}")]
    InvalidParams { field: String, reason: String },
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("{connector}.{operation} answered {status}")]
    Refused {
        connector: String,
        operation: String,
        status: u16,
        body: serde_json::Value,
    },
    #[error("{0}")]
    Transport(String),
    #[error(
        "the outcome of write {key} is unknown ({reason}); it will be reconciled, not sent blindly"
    )]
    UnknownOutcome { key: String, reason: String },
    #[error("cancelled")]
    Cancelled,
    /// A dry run's write: refused, nothing sent; says what would have been.
    #[error("dry run: {0}")]
    DryRun(String),
    #[error("effect ledger: {0}")]
    Ledger(String),
    /// A call made by the controller for a bot in another process: what
    /// it answered.
    #[error("{message}")]
    Remote { message: String, retryable: bool },
}

impl ToolError {
    /// Whether another attempt of the ticket may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ToolError::Transport(_) | ToolError::UnknownOutcome { .. } | ToolError::Ledger(_)
        ) || matches!(self, ToolError::Refused { status, .. } if *status >= 500)
            || matches!(
                self,
                ToolError::Remote {
                    retryable: true,
                    ..
                }
            )
    }
}

/// What went through the runtime since it started: the architecture
/// view's edges from the bots to the broker and out to the systems.
#[derive(Debug, Default)]
pub struct CallCounts {
    /// Calls the gate let through.
    pub allowed: std::sync::atomic::AtomicU64,
    /// Calls the gate refused (denied, needing approval, bad parameters,
    /// a write in a dry run).
    pub refused: std::sync::atomic::AtomicU64,
    /// Requests sent to an outside system over HTTP (each try).
    pub sent: std::sync::atomic::AtomicU64,
    /// Requests a built-in connector served in this process.
    pub served: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
pub struct Runtime {
    registry: Arc<Registry>,
    counts: Arc<CallCounts>,
    gate: Gate,
    broker: Arc<Broker>,
    db: ConnectorDb,
    clock: SharedClock,
    http: reqwest::Client,
    /// Secrets in an outside system's answer are redacted before anything
    /// keeps or returns it (the effect ledger, the bot, the ticket).
    rules: Arc<SecretRules>,
}

/// The idempotency key of a write: stable across the ticket's attempts.
pub fn effect_key(req: &ToolRequest) -> String {
    let mut h = Sha256::new();
    for part in [
        req.call.ticket.to_string().as_bytes(),
        req.call.connector.as_bytes(),
        req.call.operation.as_bytes(),
        &req.call_index.to_be_bytes(),
    ] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part);
    }
    let digest = h.finalize();
    format!("oshal-{}", crate::text::hex(&digest[..16]))
}

/// How a call reaches the system that answers it.
enum Via<'a> {
    /// Over HTTP, the credential exchanged for this token per request.
    Http(ToolToken),
    /// In process: a built-in connector's handler.
    BuiltIn(&'a dyn BuiltIn),
}

impl Via<'_> {
    /// What the effect ledger records as the write's token.
    fn token_id(&self) -> &str {
        match self {
            Via::Http(token) => &token.id,
            Via::BuiltIn(_) => "built-in",
        }
    }
}

enum Sent {
    Answer {
        status: u16,
        body: serde_json::Value,
    },
    NoAnswer(String),
}

impl Runtime {
    pub fn new(
        registry: Arc<Registry>,
        gate: Gate,
        broker: Arc<Broker>,
        db: ConnectorDb,
        rules: Arc<SecretRules>,
        clock: SharedClock,
    ) -> Self {
        Self {
            registry,
            counts: Arc::default(),
            gate,
            broker,
            db,
            clock,
            rules,
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a reqwest client builds"),
        }
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// What went through since start.
    pub fn counts(&self) -> &CallCounts {
        &self.counts
    }

    /// The gate's decision on `call`, taken (and audited) exactly as a real
    /// call would take it, without making the call.
    pub async fn decide(
        &self,
        call: &CallRef,
        params: &serde_json::Value,
    ) -> super::gate::Decision {
        let (manifest, handler) = self.registry.serving(&call.connector).unzip();
        let built_in = handler.flatten().is_some();
        self.gate
            .check(call, manifest.as_deref(), built_in, params)
            .await
    }

    /// Runs one tool call to the end (or until `cancel`).
    pub async fn call(
        &self,
        req: &ToolRequest,
        cancel: &CancellationToken,
    ) -> Result<ToolResult, ToolError> {
        let (manifest, handler) = self.registry.serving(&req.call.connector).unzip();
        let handler = handler.flatten();
        let decision = self
            .gate
            .check(
                &req.call,
                manifest.as_deref(),
                handler.is_some(),
                &req.params,
            )
            .await;
        let refused = || self.counts.refused.fetch_add(1, Ordering::Relaxed);
        if let Some((field, reason)) = decision.invalid_params {
            refused();
            return Err(ToolError::InvalidParams { field, reason });
        }
        if decision.approval_required {
            refused();
            return Err(ToolError::ApprovalRequired(decision.reason));
        }
        if !decision.allowed {
            refused();
            return Err(ToolError::Denied(decision.reason));
        }
        let manifest = manifest.expect("the gate allows only enabled connectors");
        let op = manifest
            .operation(&req.call.operation)
            .expect("the gate allows only declared operations");
        if req.dry_run && op.effect == Effect::Write {
            refused();
            let reason = format!(
                "{}.{} writes, and this is a dry run: refused before anything was sent",
                req.call.connector, req.call.operation
            );
            let entry = super::store::AuditEntry::for_call(
                super::store::AuditKind::Decision,
                &req.call,
                Some(false),
                reason.clone(),
                self.clock.now_ms(),
            );
            self.db
                .audit(&entry)
                .await
                .map_err(|e| ToolError::Ledger(e.to_string()))?;
            return Err(ToolError::DryRun(reason));
        }
        self.counts.allowed.fetch_add(1, Ordering::Relaxed);
        let handler = handler.as_deref();
        match op.effect {
            Effect::Read => {
                let via = self.via(handler, &req.call, &op.scopes);
                self.read(&manifest, op, req, &via, &req.params, cancel)
                    .await
            }
            Effect::Write => self.write(&manifest, op, req, handler, cancel).await,
        }
    }

    /// A built-in's handler, or a token for HTTP bound to `call` and `scopes`.
    fn via<'a>(
        &self,
        handler: Option<&'a dyn BuiltIn>,
        call: &CallRef,
        scopes: &[String],
    ) -> Via<'a> {
        match handler {
            Some(h) => Via::BuiltIn(h),
            None => Via::Http(self.broker.issue(call, scopes)),
        }
    }

    async fn read(
        &self,
        manifest: &Manifest,
        op: &Operation,
        req: &ToolRequest,
        via: &Via<'_>,
        params: &serde_json::Value,
        cancel: &CancellationToken,
    ) -> Result<ToolResult, ToolError> {
        let mut last = String::new();
        for try_no in 1..=READ_TRIES {
            if cancel.is_cancelled() {
                return Err(ToolError::Cancelled);
            }
            match self
                .send(manifest, op, req, via, params, None, cancel)
                .await?
            {
                Sent::Answer { status, body } if status < 500 => {
                    return answer(manifest, op, status, body, None, false);
                }
                Sent::Answer { status, .. } => last = format!("{status}"),
                Sent::NoAnswer(reason) => last = reason,
            }
            if try_no < READ_TRIES {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(ToolError::Cancelled),
                    _ = tokio::time::sleep(Duration::from_millis(100 << try_no)) => {}
                }
            }
        }
        Err(ToolError::Transport(format!(
            "{}.{}: {READ_TRIES} tries failed, the last with {last}",
            manifest.id, op.id
        )))
    }

    async fn write(
        &self,
        manifest: &Manifest,
        op: &Operation,
        req: &ToolRequest,
        handler: Option<&dyn BuiltIn>,
        cancel: &CancellationToken,
    ) -> Result<ToolResult, ToolError> {
        let key = effect_key(req);
        let ledger = |e: super::store::DbError| ToolError::Ledger(e.to_string());
        let Some(tenant) = &req.call.tenant else {
            return Err(ToolError::Ledger(
                "a write is recorded under its ticket's tenant, and this call names none".into(),
            ));
        };
        let settle = async |state, status, response: Option<&serde_json::Value>| {
            let at = self.clock.now_ms();
            let key = key.as_str();
            self.db
                .settle_effect(&Settled {
                    tenant,
                    key,
                    state,
                    status,
                    response,
                    at,
                })
                .await
                .map_err(ledger)
        };
        let mut scopes = op.scopes.clone();
        let reconcile = op.reconcile.as_deref().and_then(|r| manifest.operation(r));
        if let Some(r) = reconcile {
            scopes.extend(r.scopes.iter().cloned());
        }
        let via = self.via(handler, &req.call, &scopes);
        match self.db.effect(tenant, &key).await.map_err(ledger)? {
            Some(done) if done.state == EffectState::Done => {
                return answer(
                    manifest,
                    op,
                    done.status.unwrap_or(200),
                    done.response.unwrap_or_default(),
                    Some(key),
                    true,
                );
            }
            Some(failed) if failed.state == EffectState::Failed => {
                return Err(ToolError::Refused {
                    connector: manifest.id.clone(),
                    operation: op.id.clone(),
                    status: failed.status.unwrap_or(400),
                    body: failed.response.unwrap_or_default(),
                });
            }
            Some(_unsettled) => {
                if let Some(r) = reconcile {
                    let probe = serde_json::json!({ "idempotency_key": key });
                    match self
                        .send(manifest, r, req, &via, &probe, None, cancel)
                        .await?
                    {
                        Sent::Answer { status, body } if (200..300).contains(&status) => {
                            settle(EffectState::Done, Some(status), Some(&body)).await?;
                            tracing::info!(effect = %key, "reconciled: the write had been applied");
                            return answer(manifest, op, status, body, Some(key), true);
                        }
                        // Not applied: send it (below).
                        Sent::Answer { status: 404, .. } => {}
                        Sent::Answer { status, .. } => {
                            return Err(ToolError::UnknownOutcome {
                                key,
                                reason: format!("reconcile answered {status}"),
                            });
                        }
                        Sent::NoAnswer(reason) => {
                            return Err(ToolError::UnknownOutcome {
                                key,
                                reason: format!("reconcile: {reason}"),
                            });
                        }
                    }
                }
            }
            None => {}
        }
        if cancel.is_cancelled() {
            return Err(ToolError::Cancelled);
        }
        let now = self.clock.now_ms();
        self.db
            .begin_effect(&EffectRow {
                key: key.clone(),
                tenant: tenant.clone(),
                ticket: req.call.ticket,
                attempt: req.call.attempt,
                connector: manifest.id.clone(),
                operation: op.id.clone(),
                token_id: via.token_id().to_owned(),
                state: EffectState::InFlight,
                status: None,
                response: None,
                created_at_ms: now,
                updated_at_ms: now,
            })
            .await
            .map_err(ledger)?;
        let sent = self
            .send(manifest, op, req, &via, &req.params, Some(&key), cancel)
            .await?;
        match sent {
            Sent::Answer { status, body } if (200..300).contains(&status) => {
                settle(EffectState::Done, Some(status), Some(&body)).await?;
                answer(manifest, op, status, body, Some(key), false)
            }
            Sent::Answer { status, body } if status < 500 => {
                settle(EffectState::Failed, Some(status), Some(&body)).await?;
                answer(manifest, op, status, body, Some(key), false)
            }
            Sent::Answer { status, body } => {
                settle(EffectState::Unknown, Some(status), Some(&body)).await?;
                Err(ToolError::UnknownOutcome {
                    key,
                    reason: format!("answered {status}"),
                })
            }
            Sent::NoAnswer(reason) => {
                settle(EffectState::Unknown, None, None).await?;
                Err(ToolError::UnknownOutcome { key, reason })
            }
        }
    }

    /// One request (a write when it carries `idempotency_key`), over HTTP
    /// or to a built-in's handler.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        manifest: &Manifest,
        op: &Operation,
        req: &ToolRequest,
        via: &Via<'_>,
        params: &serde_json::Value,
        idempotency_key: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<Sent, ToolError> {
        match via {
            Via::Http(token) => {
                self.counts.sent.fetch_add(1, Ordering::Relaxed);
                self.send_http(manifest, op, req, token, params, idempotency_key, cancel)
                    .await
            }
            Via::BuiltIn(handler) => {
                self.counts.served.fetch_add(1, Ordering::Relaxed);
                self.serve(*handler, op, req, params, idempotency_key, cancel)
                    .await
            }
        }
    }

    /// One request to a built-in's handler, bounded by [`REQUEST_TIMEOUT`]
    /// and `cancel`; its answer is kept as an outside system's would be.
    async fn serve(
        &self,
        handler: &dyn BuiltIn,
        op: &Operation,
        req: &ToolRequest,
        params: &serde_json::Value,
        idempotency_key: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<Sent, ToolError> {
        let call = CallRef {
            operation: op.id.clone(),
            ..req.call.clone()
        };
        let answer = async {
            match idempotency_key {
                Some(key) => handler.write(&call, params, key).await,
                None => handler.read(&call, params).await,
            }
        };
        let answered = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ToolError::Cancelled),
            r = tokio::time::timeout(REQUEST_TIMEOUT, answer) => r,
        };
        Ok(match answered {
            Ok(Ok((status, body))) => {
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                Sent::Answer {
                    status,
                    body: self.keep(&bytes),
                }
            }
            Ok(Err(reason)) => Sent::NoAnswer(self.rules.redact(&reason).into_owned()),
            Err(_) => Sent::NoAnswer(format!(
                "{}.{} did not answer within {REQUEST_TIMEOUT:?}",
                call.connector, call.operation
            )),
        })
    }

    /// An answer's body as it may be kept and returned: the first
    /// [`MAX_RESPONSE_BYTES`] (JSON if they still parse, else text), no
    /// NUL, secrets redacted.
    fn keep(&self, bytes: &[u8]) -> serde_json::Value {
        let bytes = &bytes[..bytes.len().min(MAX_RESPONSE_BYTES)];
        let mut body = serde_json::from_slice(bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
        });
        // No store holds a NUL: the effect ledger keeps this answer.
        let replaced = crate::text::clean_json(&mut body);
        if replaced > 0 {
            tracing::warn!(
                replaced,
                "an outside system's answer held NUL characters; replaced with U+FFFD"
            );
        }
        self.rules.redact_json(&body)
    }

    /// One HTTP request: exchange the token, build, send, read.
    #[allow(clippy::too_many_arguments)]
    async fn send_http(
        &self,
        manifest: &Manifest,
        op: &Operation,
        req: &ToolRequest,
        token: &ToolToken,
        params: &serde_json::Value,
        idempotency_key: Option<&str>,
        cancel: &CancellationToken,
    ) -> Result<Sent, ToolError> {
        let call = CallRef {
            operation: op.id.clone(),
            ..req.call.clone()
        };
        let credential = self
            .broker
            .exchange(token, &call, manifest, &op.scopes)
            .await?;
        let (url, rest) = build_url(&manifest.base_url, op, params)?;
        let mut request = self.http.request(
            reqwest::Method::from_bytes(op.method.as_str().as_bytes()).expect("a known method"),
            url,
        );
        if op.method.has_body() {
            request = request.json(&rest);
        } else {
            let pairs: Vec<(String, String)> = rest
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string()),
                    )
                })
                .collect();
            request = request.query(&pairs);
        }
        let mut value =
            reqwest::header::HeaderValue::from_str(credential.value.expose()).map_err(|_| {
                ToolError::Broker(BrokerError::Backend {
                    backend: "broker",
                    reason: "the credential is not a valid header value".into(),
                })
            })?;
        value.set_sensitive(true);
        request = request.header(credential.header.as_str(), value);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let reply = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(ToolError::Cancelled),
            r = request.send() => r,
        };
        drop(credential);
        let reply = match reply {
            Ok(r) => r,
            Err(e) => return Ok(Sent::NoAnswer(e.without_url().to_string())),
        };
        let status = reply.status().as_u16();
        let bytes = match reply.bytes().await {
            Ok(b) => b,
            Err(e) => return Ok(Sent::NoAnswer(e.without_url().to_string())),
        };
        Ok(Sent::Answer {
            status,
            body: self.keep(&bytes),
        })
    }
}

fn answer(
    manifest: &Manifest,
    op: &Operation,
    status: u16,
    body: serde_json::Value,
    effect: Option<String>,
    replayed: bool,
) -> Result<ToolResult, ToolError> {
    if (200..300).contains(&status) {
        Ok(ToolResult {
            connector: manifest.id.clone(),
            operation: op.id.clone(),
            status,
            body,
            effect,
            replayed,
        })
    } else {
        Err(ToolError::Refused {
            connector: manifest.id.clone(),
            operation: op.id.clone(),
            status,
            body,
        })
    }
}

/// Fills `{name}` path segments from the parameters; returns the URL and
/// the parameters left over.
/// What a path segment keeps as it is: RFC 3986's unreserved characters
/// but `.` (so no value can spell a dot segment).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

fn build_url(
    base: &str,
    op: &Operation,
    params: &serde_json::Value,
) -> Result<(reqwest::Url, serde_json::Value), ToolError> {
    let mut rest = params.as_object().cloned().unwrap_or_default();
    let mut path = String::new();
    let mut tail = op.path.as_str();
    while let Some(open) = tail.find('{') {
        let close = open + tail[open..].find('}').unwrap_or(tail.len() - open);
        path.push_str(&tail[..open]);
        let name = &tail[open + 1..close];
        let value = rest.remove(name).ok_or_else(|| ToolError::InvalidParams {
            field: format!("params.{name}"),
            reason: "required by the path".into(),
        })?;
        let text = super::manifest::path_text(&value);
        if text == "." || text == ".." {
            return Err(ToolError::InvalidParams {
                field: format!("params.{name}"),
                reason: "a path parameter may not be . or ..".into(),
            });
        }
        // One path segment: everything but unreserved characters is
        // percent-encoded, so `/`, `?`, `#`, `%`, `.` and space stay inside it.
        path.extend(percent_encoding::utf8_percent_encode(&text, SEGMENT));
        tail = &tail[(close + 1).min(tail.len())..];
    }
    path.push_str(tail);
    let url =
        reqwest::Url::parse(&format!("{}{}", base.trim_end_matches('/'), path)).map_err(|e| {
            ToolError::InvalidParams {
                field: "params".into(),
                reason: format!("the URL does not build: {e}"),
            }
        })?;
    Ok((url, serde_json::Value::Object(rest)))
}
