//! Change events: what changed in the platform or around it (a node
//! joined or left, tickets requeued from a lost bot, the lanes reset, a
//! budget changed, a connector approved, a deploy), kept as evidence of
//! the incidents near it. Pure data.

use serde::{Deserialize, Serialize};
use specta::Type;

use oshal_kernel::clock::UnixMs;

/// What changed in the platform or around it, kept as evidence.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ChangeKind {
    NodeJoined,
    NodeLeft,
    BudgetChanged,
    ConnectorApproved,
    Deploy,
    /// Tickets went back to the queue because the bot holding them was
    /// lost (its `count`).
    TicketsRequeued,
    /// The lanes' Redis lost its data; `count` tickets were published
    /// again from the store.
    LanesReset,
    /// The store did not answer for `count` seconds (recorded once it
    /// answers again, at the time it stopped).
    StoreOutage,
    /// Dead tickets of the tenant run again by a heal (`count` of them).
    TicketsReplayed,
    /// Grants on a connector (`subject`) revoked by a heal (`count`).
    GrantsRevoked,
    /// A lost node (`subject`) retired by a heal: `count` bots forgotten.
    NodeRetired,
    /// A live bot (`subject`) drained by a heal: `count` tickets waiting
    /// in its lane went back to the queue.
    BotDrained,
    /// A tenant (`subject`) paused by a heal: its `count` unfinished
    /// tickets are kept, not routed, until it is resumed.
    TenantPaused,
    /// A tenant's (`subject`) budget lowered by a heal to stop a runaway
    /// spend: a raise heal leaves it be until a person sets the budget
    /// again (a `budget_changed`).
    BudgetCapped,
    /// A node's (`subject`) live bots drained together by a heal: `count`
    /// tickets waiting in their lanes went back to the queue.
    NodeDrained,
    /// A connector's (`subject`) exposed refresh token rotated by a heal:
    /// `count` tokens ended (revoked where the provider names a revocation
    /// endpoint) and refused, the finding that held it suppressed.
    CredentialRotated,
    /// A node (`subject`) ordered by a heal to restart: it stopped as on
    /// SIGTERM, `count` attempts its bots held went back to the queue, and
    /// it came back under its name as a new run.
    NodeRestarted,
}

/// A change event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEvent {
    pub kind: ChangeKind,
    /// What changed: a node's id, a tenant, a connector, a workflow run.
    pub subject: String,
    #[serde(default)]
    pub detail: String,
    /// How many it concerns (tickets requeued or re-driven), where that
    /// is the point; 0 otherwise. (Stated as what it is, 0 to
    /// 4,294,967,295: a 32-bit format would say half that.)
    #[serde(default)]
    #[schema(value_type = u64, maximum = 4294967295_u64)]
    pub count: u32,
    #[serde(default)]
    #[specta(type = specta_typescript::Number)]
    pub at_ms: UnixMs,
}
