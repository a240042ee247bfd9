//! Tickets: the one unit of work, its lifecycle and its validation.
//!
//! Owns the ticket model ([`Ticket`]), the typed work a ticket carries
//! ([`Work`]), the lifecycle state machine ([`state`]) and the checks a
//! submission passes at the edge ([`NewTicket::validate`]). Pure logic: no I/O,
//! no clock of its own (times are passed in). Start with [`Ticket::apply`].
//!
//! The model leaves room for what builds on the spine: a ticket can have a
//! parent (a workflow run is a ticket whose nodes are tickets), can wait for
//! approval, and carries a correlation id and a causation id so any result can
//! be walked back to what caused it.

mod build;
mod id;
mod investigate;
mod media;
mod signal;
pub mod state;

pub use build::{BuildPayload, BuildTarget, SourceFile};
pub use build::{MAX_BUILD_FILES, MAX_EXPECT, MAX_TEST_ARG, MAX_TEST_ARGS};
pub use id::{BotId, ModelId, Skill, TenantId, TicketId};
pub use id::{NAME_MAX, NAME_PATTERN, check_name};
pub use investigate::{
    InvestigatePayload, MAX_INVESTIGATE_CALLS, MAX_INVESTIGATE_TOKENS, MAX_INVESTIGATE_WALL_MS,
    PlannedCall,
};
pub use media::{MAX_CONCAT_INPUTS, MAX_MEDIA_SPAN_MS, MediaPayload, VideoCodec};
pub use media::{is_artifact_id, is_media_name};
pub use signal::{MAX_SIGNAL_QUOTES, SignalPayload};
pub use state::{LifecycleEdge, TicketState, TransitionKind, lifecycle};

use serde::{Deserialize, Serialize};
use specta::Type;
use std::sync::Arc;

use crate::clock::UnixMs;

/// The largest payload a ticket may carry, serialized.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// The longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;
/// Priorities run from 0 (lowest) to this (highest).
pub const MAX_PRIORITY: u8 = 9;
/// The most attempts a ticket may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 10;
/// The attempts a ticket gets when it asks for none.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// Largest `max_tokens` a chat ticket may ask for.
pub const MAX_REPLY_TOKENS: u32 = 8192;
/// The largest `response_schema` a chat ticket may carry, serialized.
pub const MAX_RESPONSE_SCHEMA_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{field} is {actual} bytes; the limit is {limit} bytes")]
    TooLarge {
        field: &'static str,
        limit: usize,
        actual: usize,
    },
    #[error("ticket {id} is {from}; it cannot {event:?}")]
    IllegalTransition {
        id: TicketId,
        from: TicketState,
        event: TransitionKind,
    },
    #[error("ticket {id} has used {attempts} of {max} attempts; it cannot be retried")]
    AttemptsExhausted {
        id: TicketId,
        attempts: u32,
        max: u32,
    },
}

/// A chat request: what kind `chat` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatPayload {
    /// Any text but U+0000, which no store can hold.
    #[schema(pattern = "^[^\\u0000]*$")]
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[^\\u0000]*$")]
    pub system: Option<String>,
    /// 1..=8192.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 8192)]
    pub max_tokens: Option<u32>,
    /// A JSON Schema (an object, at most 64 KiB) the reply must follow: a
    /// model that supports it (llama.cpp, OpenAI-compatible servers) is
    /// constrained to it; the built-in model is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[specta(type = Option<specta_typescript::Unknown>)]
    #[schema(value_type = Option<Object>)]
    pub response_schema: Option<serde_json::Value>,
}

/// A tool call: what kind `tool` carries. The bot calls `operation` of
/// `connector` through the auth gate, the connector runtime and the token
/// broker, then has its model answer `prompt` from the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPayload {
    pub connector: String,
    pub operation: String,
    #[serde(default = "empty_object")]
    #[specta(type = specta_typescript::Unknown)]
    pub params: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// A dry run: if the operation writes, the connector runtime refuses
    /// it before anything is sent (after the gate decides, as for a real
    /// call) and the ticket answers what would have been sent; a read runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

pub(super) fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// The typed work a ticket carries: its `kind` and `payload` together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
pub enum Work {
    Chat(ChatPayload),
    Tool(ToolPayload),
    Signal(SignalPayload),
    Media(MediaPayload),
    Build(BuildPayload),
    Investigate(InvestigatePayload),
}

impl Work {
    pub const KINDS: &'static [&'static str] =
        &["chat", "tool", "signal", "media", "build", "investigate"];

    pub fn kind(&self) -> &'static str {
        match self {
            Work::Chat(_) => "chat",
            Work::Tool(_) => "tool",
            Work::Signal(_) => "signal",
            Work::Media(_) => "media",
            Work::Build(_) => "build",
            Work::Investigate(_) => "investigate",
        }
    }

    /// The default skill of every kind of work: what a general bot offers.
    pub fn default_skills() -> Vec<Skill> {
        Self::KINDS
            .iter()
            .map(|k| Skill::parse(k).expect("kind names are valid skills"))
            .collect()
    }

    /// The skill a bot needs for this work when the submission names none.
    pub fn default_skill(&self) -> Skill {
        Skill::parse(self.kind()).expect("kind names are valid skills")
    }

    /// Parses `payload` for `kind`, naming the field that is wrong.
    pub fn parse(kind: &str, payload: serde_json::Value) -> Result<Work, TicketError> {
        match kind {
            "chat" => {
                let chat: ChatPayload = serde_json::from_value(payload).map_err(|e| TicketError::Invalid {
                    field: "payload",
                    reason: format!("not a chat payload ({e}); expected {{\"prompt\": string, \"system\"?: string, \"max_tokens\"?: integer}}"),
                })?;
                if chat.prompt.trim().is_empty() {
                    return Err(TicketError::Invalid {
                        field: "payload.prompt",
                        reason: "must not be empty".into(),
                    });
                }
                if let Some(n) = chat.max_tokens
                    && !(1..=MAX_REPLY_TOKENS).contains(&n)
                {
                    return Err(TicketError::Invalid {
                        field: "payload.max_tokens",
                        reason: format!("{n} is outside 1..={MAX_REPLY_TOKENS}"),
                    });
                }
                if let Some(schema) = &chat.response_schema {
                    if !schema.is_object() {
                        return Err(TicketError::Invalid {
                            field: "payload.response_schema",
                            reason: "must be a JSON Schema object".into(),
                        });
                    }
                    let bytes = json_len(schema);
                    if bytes > MAX_RESPONSE_SCHEMA_BYTES {
                        return Err(TicketError::TooLarge {
                            field: "payload.response_schema",
                            limit: MAX_RESPONSE_SCHEMA_BYTES,
                            actual: bytes,
                        });
                    }
                }
                Ok(Work::Chat(chat))
            }
            "tool" => {
                let tool: ToolPayload = serde_json::from_value(payload).map_err(|e| TicketError::Invalid {
                    field: "payload",
                    reason: format!("not a tool payload ({e}); expected {{\"connector\": string, \"operation\": string, \"params\"?: object, \"prompt\"?: string}}"),
                })?;
                for (field, name) in [
                    ("payload.connector", &tool.connector),
                    ("payload.operation", &tool.operation),
                ] {
                    let ok = !name.is_empty()
                        && name.len() <= 64
                        && name.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                        });
                    if !ok {
                        return Err(TicketError::Invalid {
                            field,
                            reason: format!("{name:?} must be 1 to 64 of a-z, 0-9, '-', '_'"),
                        });
                    }
                }
                if !tool.params.is_object() {
                    return Err(TicketError::Invalid {
                        field: "payload.params",
                        reason: "must be a JSON object".into(),
                    });
                }
                if tool.prompt.as_ref().is_some_and(|p| p.len() > 16 * 1024) {
                    return Err(TicketError::TooLarge {
                        field: "payload.prompt",
                        limit: 16 * 1024,
                        actual: tool.prompt.as_ref().map_or(0, String::len),
                    });
                }
                Ok(Work::Tool(tool))
            }
            "signal" => {
                let signal: SignalPayload = serde_json::from_value(payload).map_err(|e| TicketError::Invalid {
                    field: "payload",
                    reason: format!("not a signal payload ({e}); expected {{\"strategy\": object, \"instrument\": string, \"seed\"?: integer, \"bar_seconds\": integer, \"bars\": integer}}"),
                })?;
                signal.check()?;
                Ok(Work::Signal(signal))
            }
            "media" => {
                let media: MediaPayload = serde_json::from_value(payload).map_err(|e| TicketError::Invalid {
                    field: "payload",
                    reason: format!("not a media payload ({e}); expected {{\"op\": \"ingest\" | \"probe\" | \"transcode\" | \"concat\" | \"check\" | \"publish\", …}}"),
                })?;
                media.check()?;
                Ok(Work::Media(media))
            }
            "build" => {
                let build: BuildPayload = serde_json::from_value(payload).map_err(|e| TicketError::Invalid {
                    field: "payload",
                    reason: format!("not a build payload ({e}); expected {{\"op\": \"checkout\" | \"compile\" | \"test\" | \"deploy\", …}}"),
                })?;
                build.check()?;
                Ok(Work::Build(build))
            }
            "investigate" => {
                let inv: InvestigatePayload = serde_json::from_value(payload).map_err(|e| TicketError::Invalid {
                    field: "payload",
                    reason: format!("not an investigate payload ({e}); expected {{\"incident\": string, \"alert\": string, \"connector\": string, \"calls\": [{{\"operation\": string, \"params\"?: object}}], \"max_steps\": integer, \"max_wall_ms\": integer, \"max_tokens\": integer}}"),
                })?;
                inv.check()?;
                Ok(Work::Investigate(inv))
            }
            other => Err(TicketError::Invalid {
                field: "kind",
                reason: format!(
                    "unknown kind {other:?}; known kinds: {}",
                    Work::KINDS.join(", ")
                ),
            }),
        }
    }

    pub fn payload_json(&self) -> serde_json::Value {
        match self {
            Work::Chat(c) => serde_json::to_value(c).unwrap_or(serde_json::Value::Null),
            Work::Tool(t) => serde_json::to_value(t).unwrap_or(serde_json::Value::Null),
            Work::Signal(s) => serde_json::to_value(s).unwrap_or(serde_json::Value::Null),
            Work::Media(m) => serde_json::to_value(m).unwrap_or(serde_json::Value::Null),
            Work::Build(b) => serde_json::to_value(b).unwrap_or(serde_json::Value::Null),
            Work::Investigate(i) => serde_json::to_value(i).unwrap_or(serde_json::Value::Null),
        }
    }
}

/// The contract's `payload`: one of the kinds' payloads, as `kind` says
/// (each joins the contract's components by name).
fn payload_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::ToSchema;
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(utoipa::openapi::Ref::from_schema_name(ChatPayload::name()))
        .item(utoipa::openapi::Ref::from_schema_name(ToolPayload::name()))
        .item(utoipa::openapi::Ref::from_schema_name(SignalPayload::name()))
        .item(utoipa::openapi::Ref::from_schema_name(MediaPayload::name()))
        .item(utoipa::openapi::Ref::from_schema_name(BuildPayload::name()))
        .item(utoipa::openapi::Ref::from_schema_name(
            InvestigatePayload::name(),
        ))
        .into()
}

/// A submission as it arrives from a surface, before validation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTicket {
    /// `chat`, `tool`, `signal`, `media`, `build` or `investigate`;
    /// `payload` is then a `ChatPayload`, a `ToolPayload`, a
    /// `SignalPayload`, a `MediaPayload`, a `BuildPayload` or an
    /// `InvestigatePayload`.
    #[schema(pattern = "^(chat|tool|signal|media|build|investigate)$")]
    pub kind: String,
    #[specta(type = specta_typescript::Unknown)]
    #[schema(schema_with = payload_schema)]
    pub payload: serde_json::Value,
    /// A known tenant; `default` if absent.
    #[serde(default)]
    #[schema(value_type = Option<TenantId>)]
    pub tenant: Option<String>,
    /// 1..=128 printable ASCII characters: a repeat answers the first ticket.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    pub idempotency_key: Option<String>,
    /// 0..=9, higher first; 5 if absent.
    #[serde(default)]
    #[schema(maximum = 9)]
    pub priority: Option<u8>,
    #[serde(default)]
    #[schema(value_type = Option<Skill>)]
    pub skill: Option<String>,
    /// 1..=10; 3 if absent.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 10)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    #[schema(value_type = Option<TicketId>)]
    pub parent_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<TicketId>)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<TicketId>)]
    pub causation_id: Option<String>,
    /// Hold the ticket in `awaiting_approval` until a person or rule approves it.
    #[serde(default)]
    pub requires_approval: bool,
    /// When the API's auth gate admitted the request that carried it: set
    /// by the HTTP surface, never taken from a caller (not part of the body).
    #[serde(skip)]
    pub gate_at_ms: Option<UnixMs>,
}

/// A submission that passed every check at the edge.
#[derive(Debug, Clone)]
pub struct ValidTicket {
    pub tenant: TenantId,
    pub work: Arc<Work>,
    pub payload_bytes: usize,
    pub idempotency_key: Option<String>,
    pub priority: u8,
    pub skill: Skill,
    pub max_attempts: u32,
    pub parent_id: Option<TicketId>,
    pub correlation_id: Option<TicketId>,
    pub causation_id: Option<TicketId>,
    pub requires_approval: bool,
    pub gate_at_ms: Option<UnixMs>,
}

impl NewTicket {
    /// A chat ticket for `prompt` in the default tenant.
    pub fn chat(prompt: impl Into<String>) -> Self {
        Self {
            kind: "chat".into(),
            payload: serde_json::json!({ "prompt": prompt.into() }),
            ..Self::default()
        }
    }

    /// Checks every field against its limit; the error names the field.
    pub fn validate(self) -> Result<ValidTicket, TicketError> {
        let payload_bytes = json_len(&self.payload);
        if payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(TicketError::TooLarge {
                field: "payload",
                limit: MAX_PAYLOAD_BYTES,
                actual: payload_bytes,
            });
        }
        if let Some(at) = crate::text::find_in_json(&self.payload, "payload") {
            return Err(TicketError::Invalid {
                field: payload_field(&at),
                reason: format!(
                    "{at} holds U+0000 (NUL), which no store can hold; remove it or send the data base64-encoded"
                ),
            });
        }
        let work = Work::parse(&self.kind, self.payload)?;
        let tenant = match self.tenant.as_deref() {
            None => TenantId::default_tenant(),
            Some(t) => TenantId::parse(t)?,
        };
        if let Some(key) = &self.idempotency_key {
            let printable = key.chars().all(|c| c.is_ascii_graphic());
            if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !printable {
                return Err(TicketError::Invalid {
                    field: "idempotency_key",
                    reason: format!(
                        "must be 1..={MAX_IDEMPOTENCY_KEY} printable ASCII characters without spaces"
                    ),
                });
            }
        }
        let priority = self.priority.unwrap_or(5);
        if priority > MAX_PRIORITY {
            return Err(TicketError::Invalid {
                field: "priority",
                reason: format!("{priority} is above the limit {MAX_PRIORITY}"),
            });
        }
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(TicketError::Invalid {
                field: "max_attempts",
                reason: format!("{max_attempts} is outside 1..={MAX_ATTEMPTS_LIMIT}"),
            });
        }
        let skill = match self.skill.as_deref() {
            None => work.default_skill(),
            Some(s) => Skill::parse(s)?,
        };
        let parse_ref =
            |field: &'static str, v: Option<String>| -> Result<Option<TicketId>, TicketError> {
                v.map(|s| {
                    TicketId::parse(&s).map_err(|_| TicketError::Invalid {
                        field,
                        reason: format!("{s:?} is not a ticket id (a UUID)"),
                    })
                })
                .transpose()
            };
        Ok(ValidTicket {
            tenant,
            work: Arc::new(work),
            payload_bytes,
            idempotency_key: self.idempotency_key,
            priority,
            skill,
            max_attempts,
            parent_id: parse_ref("parent_id", self.parent_id)?,
            correlation_id: parse_ref("correlation_id", self.correlation_id)?,
            causation_id: parse_ref("causation_id", self.causation_id)?,
            requires_approval: self.requires_approval,
            gate_at_ms: self.gate_at_ms,
        })
    }
}

/// The payload field a path below `payload` is in, as the error names it.
fn payload_field(path: &str) -> &'static str {
    let top = path
        .strip_prefix("payload.")
        .and_then(|p| p.split(['.', '[']).next());
    match top {
        Some("prompt") => "payload.prompt",
        Some("system") => "payload.system",
        Some("params") => "payload.params",
        Some("connector") => "payload.connector",
        Some("operation") => "payload.operation",
        _ => "payload",
    }
}

/// Serialized length of a JSON value without allocating the string.
fn json_len(v: &serde_json::Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

/// A ticket as the controller holds it and the stores persist it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ticket {
    pub id: TicketId,
    pub tenant: TenantId,
    pub work: Arc<Work>,
    pub priority: u8,
    pub skill: Skill,
    pub idempotency_key: Option<String>,
    pub state: TicketState,
    /// Times this ticket has been routed to a bot (the current attempt number).
    pub attempts: u32,
    pub max_attempts: u32,
    /// Transitions recorded so far (the next one's `seq`).
    pub transitions: u32,
    pub bot: Option<BotId>,
    pub parent_id: Option<TicketId>,
    pub correlation_id: TicketId,
    pub causation_id: Option<TicketId>,
    /// While `failed`: when the next attempt may start.
    pub not_before_ms: Option<UnixMs>,
    pub result: Option<Arc<serde_json::Value>>,
    pub error: Option<String>,
    /// When the API's auth gate admitted its submission; `None` where no
    /// gate stands (the desktop's IPC, the controller's own submissions)
    /// and for tickets stored before it was recorded.
    pub gate_at_ms: Option<UnixMs>,
    pub created_at_ms: UnixMs,
    pub updated_at_ms: UnixMs,
}

/// One recorded transition: what the event rows hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Transition {
    pub ticket: TicketId,
    pub tenant: TenantId,
    /// Position in the ticket's history, from 0.
    pub seq: u32,
    pub from: Option<TicketState>,
    pub to: TicketState,
    pub attempt: u32,
    pub bot: Option<BotId>,
    pub reason: String,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub at_ms: UnixMs,
    pub correlation_id: TicketId,
    pub causation_id: Option<TicketId>,
}

impl Ticket {
    /// A new ticket from a valid submission; its first transition is its creation.
    pub fn create(id: TicketId, v: ValidTicket, now: UnixMs) -> (Ticket, Transition) {
        let state = if v.requires_approval {
            TicketState::AwaitingApproval
        } else {
            TicketState::Queued
        };
        let mut ticket = Ticket {
            id,
            tenant: v.tenant,
            work: v.work,
            priority: v.priority,
            skill: v.skill,
            idempotency_key: v.idempotency_key,
            state,
            attempts: 0,
            max_attempts: v.max_attempts,
            transitions: 0,
            bot: None,
            parent_id: v.parent_id,
            correlation_id: v.correlation_id.or(v.parent_id).unwrap_or(id),
            causation_id: v.causation_id.or(v.parent_id),
            not_before_ms: None,
            result: None,
            error: None,
            gate_at_ms: v.gate_at_ms,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let t = ticket.transition_record(None, "submitted", now);
        (ticket, t)
    }

    /// The event row for the transition just made; numbers it in the
    /// ticket's history.
    fn transition_record(
        &mut self,
        from: Option<TicketState>,
        reason: &str,
        at_ms: UnixMs,
    ) -> Transition {
        self.transitions += 1;
        Transition {
            ticket: self.id,
            tenant: self.tenant.clone(),
            seq: self.transitions - 1,
            from,
            to: self.state,
            attempt: self.attempts,
            bot: self.bot.clone(),
            reason: reason.to_owned(),
            at_ms,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
        }
    }

    /// Applies `event`, or refuses it with a typed error and changes nothing.
    ///
    /// `Route` starts a new attempt on `bot`; `Retry` needs attempts left.
    pub fn apply(
        &mut self,
        event: TransitionKind,
        bot: Option<&BotId>,
        reason: &str,
        now: UnixMs,
    ) -> Result<Transition, TicketError> {
        let illegal = || TicketError::IllegalTransition {
            id: self.id,
            from: self.state,
            event,
        };
        let to = self.state.on(event).ok_or_else(illegal)?;
        if event == TransitionKind::Retry && self.attempts >= self.max_attempts {
            return Err(TicketError::AttemptsExhausted {
                id: self.id,
                attempts: self.attempts,
                max: self.max_attempts,
            });
        }
        let from = self.state;
        match event {
            TransitionKind::Route => {
                self.attempts += 1;
                self.bot = bot.cloned();
                self.error = None;
            }
            TransitionKind::Requeue | TransitionKind::Retry => {
                self.not_before_ms = None;
            }
            _ => {}
        }
        self.state = to;
        self.updated_at_ms = now;
        Ok(self.transition_record(Some(from), reason, now))
    }

    /// Whether another attempt is allowed after a failure.
    pub fn can_retry(&self) -> bool {
        self.attempts < self.max_attempts
    }
}

/// Why a non-terminal ticket is not moving yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum WaitReason {
    AwaitingApproval,
    NoLiveBotWithSkill {
        skill: Skill,
    },
    LanesFull {
        skill: Skill,
        bots: u32,
    },
    /// Every live bot with its skill is drained: routed nothing until one
    /// is uncordoned.
    BotsDrained {
        skill: Skill,
        bots: u32,
    },
    TenantBudgetExhausted {
        tenant: TenantId,
        spent_usd: f64,
        budget_usd: f64,
    },
    /// Its tenant is paused: admitted and kept, routed once resumed.
    TenantPaused {
        tenant: TenantId,
    },
    BackingOff {
        #[specta(type = specta_typescript::Number)]
        #[schema(value_type = i64)]
        until_ms: UnixMs,
    },
    /// Ahead of it in the queue for its skill.
    InQueue {
        position: u32,
    },
    InLane {
        bot: BotId,
    },
    Running {
        bot: BotId,
        #[specta(type = specta_typescript::Number)]
        #[schema(value_type = i64)]
        since_ms: UnixMs,
    },
}

impl WaitReason {
    pub fn describe(&self) -> String {
        match self {
            Self::AwaitingApproval => "waiting for approval".into(),
            Self::NoLiveBotWithSkill { skill } => format!("no live bot has skill {skill}"),
            Self::LanesFull { skill, bots } => {
                format!("every lane of the {bots} bots with skill {skill} is full")
            }
            Self::TenantBudgetExhausted {
                tenant,
                spent_usd,
                budget_usd,
            } => {
                format!(
                    "tenant {tenant} budget exhausted (spent ${spent_usd:.6} of ${budget_usd:.6})"
                )
            }
            Self::BotsDrained { skill, bots } => {
                format!("the {bots} live bots with skill {skill} are drained (uncordon one)")
            }
            Self::TenantPaused { tenant } => {
                format!("tenant {tenant} is paused: routed once it is resumed")
            }
            Self::BackingOff { until_ms } => format!("backing off until {until_ms} (unix ms)"),
            Self::InQueue { position } => format!("queued behind {position} tickets"),
            Self::InLane { bot } => format!("in the lane of bot {bot}"),
            Self::Running { bot, since_ms } => {
                format!("running on bot {bot} since {since_ms} (unix ms)")
            }
        }
    }
}

#[cfg(test)]
mod tests;
