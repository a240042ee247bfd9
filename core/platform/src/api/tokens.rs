//! Who a request acts for: the operator (the server's own API token) or one
//! tenant, through a tenant-scoped token with a role.
//!
//! A tenant token is `oshal_` and 64 hex digits (256 random bits), shown
//! once when it is created; the store keeps its SHA-256 alone
//! ([`oshal_store::tokens`]). The directory reads every live token's hash
//! once, then keeps its copy current as tokens are created and revoked
//! through it (one controller serves the API). What each route lets a
//! tenant do is the route table's word ([`super::routes::Access`]); what it
//! may see there, its handler's, through [`Principal::only`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use specta::Type;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::RwLock;

use super::{ApiError, ErrorKind};
use crate::clock::{SharedClock, UnixMs};
use crate::store::{Store, TokenRecord, TokenRole};
use crate::ticket::TenantId;

/// Who a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The holder of the server's API token: every tenant, every route.
    Operator,
    /// A tenant token's holder: that tenant's share of the routes its role
    /// allows.
    Tenant { tenant: TenantId, role: TokenRole },
}

impl Principal {
    /// The tenant a read or write is fenced to; `None` for the operator.
    pub fn only(&self) -> Option<&TenantId> {
        match self {
            Self::Operator => None,
            Self::Tenant { tenant, .. } => Some(tenant),
        }
    }

    /// The tenant a request names, checked against this principal: a
    /// tenant token's requests default to its tenant and may name no other.
    /// `field` names where the request said it.
    pub fn fence(&self, asked: Option<&str>, field: &str) -> Result<Option<String>, ApiError> {
        let Some(own) = self.only() else {
            return Ok(asked.map(str::to_owned));
        };
        match asked {
            None => Ok(Some(own.to_string())),
            Some(t) if t == own.as_str() => Ok(Some(t.to_owned())),
            Some(_) => Err(ApiError::new(
                ErrorKind::Forbidden,
                format!("this token acts for tenant {own} alone"),
            )
            .field(field)),
        }
    }

    pub fn view(&self) -> WhoAmI {
        match self {
            Self::Operator => WhoAmI {
                tenant: None,
                role: TokenRole::Operator,
                scope: Scope::AllTenants,
            },
            Self::Tenant { tenant, role } => WhoAmI {
                tenant: Some(tenant.clone()),
                role: *role,
                scope: Scope::Tenant,
            },
        }
    }
}

/// How far a token reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The server's own token: every tenant and the fleet's configuration.
    AllTenants,
    /// One tenant's tickets, cost, audit, effects, findings and events.
    Tenant,
}

/// What the presented token is (`GET /api/v1/whoami`): what the desktop's
/// "Attach to fleet" shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct WhoAmI {
    pub scope: Scope,
    /// The tenant a tenant token is bound to.
    pub tenant: Option<TenantId>,
    pub role: TokenRole,
}

/// The longest label a token takes.
pub const MAX_LABEL: usize = 128;

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(value_type = TenantId)]
    pub tenant: String,
    pub role: TokenRole,
    /// What it is for (up to 128 characters).
    #[serde(default)]
    #[schema(max_length = 128, pattern = "^[^\\u0000]*$")]
    pub label: Option<String>,
}

/// A token as listed: never its value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct TokenView {
    pub id: String,
    pub tenant: TenantId,
    pub role: TokenRole,
    pub label: String,
    #[specta(type = specta_typescript::Number)]
    #[schema(value_type = i64)]
    pub created_at_ms: UnixMs,
    #[specta(type = Option<specta_typescript::Number>)]
    #[schema(value_type = Option<i64>)]
    pub revoked_at_ms: Option<UnixMs>,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> Self {
        Self {
            id: t.id.clone(),
            tenant: t.tenant.clone(),
            role: t.role,
            label: t.label.clone(),
            created_at_ms: t.created_at_ms,
            revoked_at_ms: t.revoked_at_ms,
        }
    }
}

/// A token just created: the only time its value is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct IssuedToken {
    #[serde(flatten)]
    pub info: TokenView,
    /// Send it as `Authorization: Bearer <token>`; it cannot be shown again.
    pub token: String,
}

/// The tenant tokens of one API server.
#[derive(Debug)]
pub struct TokenDirectory {
    store: Arc<dyn Store>,
    clock: SharedClock,
    /// SHA-256 (hex) of each live token → who it acts for; `None` until
    /// first read.
    live: RwLock<Option<HashMap<String, Principal>>>,
}

fn digest(token: &str) -> String {
    crate::text::hex(&Sha256::digest(token.as_bytes()))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works");
    crate::text::hex(&buf)
}

impl TokenDirectory {
    pub fn new(store: Arc<dyn Store>, clock: SharedClock) -> Self {
        Self {
            store,
            clock,
            live: RwLock::new(None),
        }
    }

    async fn load(&self) -> Result<(), ApiError> {
        if self.live.read().await.is_some() {
            return Ok(());
        }
        let records = self.store.api_tokens().await.map_err(store_error)?;
        let mut live = self.live.write().await;
        if live.is_none() {
            *live = Some(
                records
                    .iter()
                    .filter(|t| t.revoked_at_ms.is_none())
                    .map(|t| {
                        let who = Principal::Tenant {
                            tenant: t.tenant.clone(),
                            role: t.role,
                        };
                        (t.hash.clone(), who)
                    })
                    .collect(),
            );
        }
        Ok(())
    }

    /// Who a presented tenant token acts for; `None` if no live token has
    /// this value.
    pub async fn resolve(&self, presented: &str) -> Result<Option<Principal>, ApiError> {
        self.load().await?;
        let hash = digest(presented);
        Ok(self
            .live
            .read()
            .await
            .as_ref()
            .and_then(|live| live.get(&hash).cloned()))
    }

    /// Creates a token for a tenant: stored as its hash, its value returned
    /// this once.
    pub async fn create(&self, new: NewToken) -> Result<IssuedToken, ApiError> {
        let tenant = TenantId::parse(&new.tenant).map_err(|e| ApiError::from(e).field("tenant"))?;
        let label = new.label.unwrap_or_default();
        if label.chars().count() > MAX_LABEL {
            return Err(ApiError::new(
                ErrorKind::Invalid,
                format!("label holds more than {MAX_LABEL} characters"),
            )
            .field("label")
            .limit(MAX_LABEL as u64));
        }
        self.load().await?;
        let token = format!("oshal_{}", random_hex(32));
        let record = TokenRecord {
            id: format!("tok_{}", random_hex(8)),
            tenant: tenant.clone(),
            role: new.role,
            label,
            hash: digest(&token),
            created_at_ms: self.clock.now_ms(),
            revoked_at_ms: None,
        };
        self.store
            .add_api_token(&record)
            .await
            .map_err(store_error)?;
        if let Some(live) = self.live.write().await.as_mut() {
            live.insert(
                record.hash.clone(),
                Principal::Tenant {
                    tenant,
                    role: record.role,
                },
            );
        }
        Ok(IssuedToken {
            info: TokenView::from(&record),
            token,
        })
    }

    /// Every token, revoked ones too, without their values.
    pub async fn list(&self) -> Result<Vec<TokenView>, ApiError> {
        let records = self.store.api_tokens().await.map_err(store_error)?;
        Ok(records.iter().map(TokenView::from).collect())
    }

    /// Revokes a token: from the next request on, it is refused.
    pub async fn revoke(&self, id: &str) -> Result<(), ApiError> {
        self.load().await?;
        let at = self.clock.now_ms();
        if !self
            .store
            .revoke_api_token(id, at)
            .await
            .map_err(store_error)?
        {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                format!("no live token has id {id:?}"),
            ));
        }
        let records = self.store.api_tokens().await.map_err(store_error)?;
        if let Some(hash) = records.iter().find(|t| t.id == id).map(|t| &t.hash)
            && let Some(live) = self.live.write().await.as_mut()
        {
            live.remove(hash);
        }
        Ok(())
    }
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    crate::controller::ControllerError::Store(e).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_token_is_fenced_to_its_tenant_and_the_operator_is_not() {
        let acme = Principal::Tenant {
            tenant: TenantId::parse("acme").unwrap(),
            role: TokenRole::Viewer,
        };
        assert_eq!(acme.fence(None, "tenant").unwrap().as_deref(), Some("acme"));
        assert_eq!(
            acme.fence(Some("acme"), "tenant").unwrap().as_deref(),
            Some("acme")
        );
        let e = acme.fence(Some("globex"), "filter.tenant").unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (ErrorKind::Forbidden, Some("filter.tenant"))
        );
        assert_eq!(Principal::Operator.fence(None, "tenant").unwrap(), None);
        assert_eq!(
            Principal::Operator
                .fence(Some("globex"), "tenant")
                .unwrap()
                .as_deref(),
            Some("globex")
        );
    }

    #[test]
    fn a_token_is_kept_as_its_hash() {
        let h = digest("oshal_abc");
        assert_eq!(h.len(), 64);
        assert_ne!(h, digest("oshal_abd"));
        assert!(!h.contains("abc"));
    }
}
