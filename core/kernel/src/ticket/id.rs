//! Identifier newtypes. Each validates its own shape at the edge, so code past
//! the API never sees a malformed id.

use serde::{Deserialize, Serialize};
use specta::Type;
use std::fmt;
use std::sync::Arc;
use uuid::Uuid;

use super::TicketError;

/// A ticket id: a UUIDv7, so ids sort by creation time (cursors, B-tree appends).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct TicketId(pub Uuid);

impl TicketId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    pub fn parse(s: &str) -> Result<Self, TicketError> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| TicketError::Invalid {
                field: "id",
                reason: format!("{s:?} is not a ticket id (a UUID)"),
            })
    }
}

impl Default for TicketId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TicketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The longest name, in bytes.
pub const NAME_MAX: usize = 64;

/// Checks a short name: 1..=64 bytes of `[A-Za-z0-9._-]`, starting alphanumeric.
pub fn check_name(field: &'static str, s: &str) -> Result<(), TicketError> {
    const MAX: usize = NAME_MAX;
    let ok_start = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if s.is_empty() || s.len() > MAX || !ok_start || !ok_chars {
        return Err(TicketError::Invalid {
            field,
            reason: format!(
                "{s:?} must be 1..={MAX} characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        });
    }
    Ok(())
}

/// The contract's form of [`check_name`]: what a name may hold, as a
/// pattern and a length a client can check before sending.
fn name_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(NAME_PATTERN))
        .min_length(Some(1))
        .max_length(Some(NAME_MAX))
        .into()
}

/// [`check_name`] as a regular expression.
pub const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]*$";

macro_rules! name_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Type)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, TicketError> {
                check_name($field, s)?;
                Ok(Self(Arc::from(s)))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = TicketError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0.to_string()
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                name_schema()
            }
        }
        impl utoipa::ToSchema for $name {}
    };
}

name_id!(
    /// A tenant: the unit of isolation and budget.
    TenantId,
    "tenant"
);
name_id!(
    /// A bot: one worker with its own lane.
    BotId,
    "bot"
);
name_id!(
    /// A skill a bot offers and a ticket needs.
    Skill,
    "skill"
);
name_id!(
    /// A model as the price table names it.
    ModelId,
    "model"
);

impl TenantId {
    /// The tenant used when a request names none.
    pub fn default_tenant() -> Self {
        Self(Arc::from("default"))
    }

    /// The tenant's UUID where a database keys tenants by UUID (PostgreSQL's
    /// row-level security): a UUIDv5 of the name, so every process derives
    /// the same one without a lookup.
    pub fn uuid(&self) -> Uuid {
        Uuid::new_v5(&TENANT_NAMESPACE, self.0.as_bytes())
    }
}

/// The namespace of tenant UUIDs (a fixed, random UUID).
const TENANT_NAMESPACE: Uuid = Uuid::from_u128(0x6f73_6861_6c5f_4a7e_9c1d_7465_6e61_6e74);
