//! Tenant-scoped API tokens as the store keeps them: the token's id, its
//! tenant and role, a label, and the SHA-256 of its value; never the value.
//!
//! This is the directory of credentials, like the tenant directory, not a
//! tenant's data: the API's gate must find a token before it knows whose it
//! is, so the table has no row-level security (on PostgreSQL only the
//! controller's role may read it, and it holds nothing a hash does not).

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::clock::UnixMs;
use crate::ticket::TenantId;

/// What a tenant's token may do on its tenant's data.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
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
pub enum TokenRole {
    /// Reads, submits, cancels, approves and runs bulk operations.
    Operator,
    /// Reads only.
    Viewer,
}

/// One token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// `tok_` and 16 hex digits: how a listing and a revocation name it.
    pub id: String,
    pub tenant: TenantId,
    pub role: TokenRole,
    pub label: String,
    /// SHA-256 of the token's value, hex.
    pub hash: String,
    pub created_at_ms: UnixMs,
    pub revoked_at_ms: Option<UnixMs>,
}

/// A stored role, read back.
pub(crate) fn role(s: &str) -> Result<TokenRole, crate::StoreError> {
    use oshal_kernel::name::Named;
    TokenRole::parse(s).ok_or_else(|| crate::corrupt("token role", s))
}

/// The columns every adapter reads a token with, in [`from_row`]'s order.
pub(crate) const COLUMNS: &str = "id, tenant, role, label, hash, created_at_ms, revoked_at_ms";

/// A stored token, read back from either adapter's row.
pub(crate) fn from_row<R>(row: &R) -> Result<TokenRecord, crate::StoreError>
where
    R: sqlx::Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(TokenRecord {
        id: row.try_get("id")?,
        tenant: crate::tenant(&row.try_get::<String, _>("tenant")?)?,
        role: role(&row.try_get::<String, _>("role")?)?,
        label: row.try_get("label")?,
        hash: row.try_get("hash")?,
        created_at_ms: row.try_get("created_at_ms")?,
        revoked_at_ms: row.try_get("revoked_at_ms")?,
    })
}
