//! Who a request acts for: the operator (the server's own API token) or one
//! tenant, through a tenant-scoped token with a role.
//!
//! A tenant token is `oshal_` and 64 hex digits (256 random bits), shown
//! once when it is created; the store keeps its SHA-256 alone
//! ([`oshal_store::tokens`]). The directory reads every live token's hash
//! once and keeps that copy until a token is created or revoked through it
//! (one controller serves the API), when it reads them again. What each
//! route lets a tenant do is the route table's word
//! ([`super::routes::Access`]); what it may see there, its handler's,
//! through [`Principal::only`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use specta::Type;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Bumped by every change: a copy read across one is stale.
    generation: AtomicU64,
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
            generation: AtomicU64::new(0),
        }
    }

    /// Reads the live tokens if no copy is held. A copy read while a change
    /// landed is not kept (the generation moved on): it is read again.
    async fn load(&self) -> Result<(), ApiError> {
        for _ in 0..3 {
            if self.live.read().await.is_some() {
                return Ok(());
            }
            let generation = self.generation.load(Ordering::SeqCst);
            let records = self.store.api_tokens().await.map_err(store_error)?;
            let mut live = self.live.write().await;
            if live.is_none() && self.generation.load(Ordering::SeqCst) == generation {
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
        }
        if self.live.read().await.is_some() {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorKind::StoreUnavailable,
            "the API tokens kept changing while they were read; try again",
        ))
    }

    /// Drops the copy of the live tokens after a change: the next request
    /// reads them again from the store.
    async fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        *self.live.write().await = None;
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
        self.invalidate().await;
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

    /// Revokes a token: from the next request on, it is refused. The copy
    /// of the live tokens is dropped and read again from the store on the
    /// next request, so a revocation never leaves a stale copy behind (and
    /// with the store down, tenant tokens are refused, not let through).
    pub async fn revoke(&self, id: &str) -> Result<(), ApiError> {
        let at = self.clock.now_ms();
        let revoked = self
            .store
            .revoke_api_token(id, at)
            .await
            .map_err(store_error)?;
        if !revoked {
            return Err(ApiError::new(
                ErrorKind::NotFound,
                format!("no live token has id {id:?}"),
            ));
        }
        self.invalidate().await;
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

    /// Made, resolved, listed without its value, revoked: refused from the
    /// next request on, by the same directory that had it in its copy.
    #[tokio::test]
    async fn a_revoked_token_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sqlite::SqliteStore::open(dir.path())
            .await
            .unwrap();
        let tokens = TokenDirectory::new(Arc::new(store), Arc::new(crate::clock::SystemClock));
        let issued = tokens
            .create(NewToken {
                tenant: "acme".into(),
                role: TokenRole::Viewer,
                label: None,
            })
            .await
            .unwrap();
        let who = tokens.resolve(&issued.token).await.unwrap();
        assert_eq!(
            who,
            Some(Principal::Tenant {
                tenant: TenantId::parse("acme").unwrap(),
                role: TokenRole::Viewer
            })
        );
        assert_eq!(tokens.resolve("oshal_not-a-token").await.unwrap(), None);
        let listed = serde_json::to_string(&tokens.list().await.unwrap()).unwrap();
        assert!(!listed.contains(&issued.token));
        tokens.revoke(&issued.info.id).await.unwrap();
        assert_eq!(tokens.resolve(&issued.token).await.unwrap(), None);
        let again = tokens.revoke(&issued.info.id).await.unwrap_err();
        assert_eq!(again.kind, ErrorKind::NotFound);
        let bad = tokens
            .create(NewToken {
                tenant: "no spaces".into(),
                role: TokenRole::Operator,
                label: Some("x".repeat(MAX_LABEL + 1)),
            })
            .await
            .unwrap_err();
        assert_eq!(bad.field.as_deref(), Some("tenant"));
    }

    #[test]
    fn a_token_is_kept_as_its_hash() {
        let h = digest("oshal_abc");
        assert_eq!(h.len(), 64);
        assert_ne!(h, digest("oshal_abd"));
        assert!(!h.contains("abc"));
    }
}
