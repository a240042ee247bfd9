//! The auth gate: every route but the public ones requires a token, on
//! loopback too (deny by default). The server's own token (the operator's)
//! is compared in constant time; any other is looked up by its hash among
//! the tenant tokens ([`TokenDirectory`]). Neither is ever logged. Which
//! routes are public, and which may take the token as `?token=` (the event
//! socket, which browsers cannot give headers), is the route table's word
//! ([`Auth`]); so is what a tenant's token may call there ([`Access`]).
//! The request goes on carrying its [`Principal`] for the handler to fence
//! by.
//!
//! [`TokenDirectory`]: crate::api::tokens::TokenDirectory

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::AppState;
use crate::api::routes::{ALL, Access, Auth, Route};
use crate::api::tokens::Principal;
use crate::api::{ApiError, ErrorKind};
use crate::store::TokenRole;

/// The API token. Its `Debug` never shows it.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl ApiToken {
    pub fn new(token: impl Into<String>) -> Result<Self, ApiError> {
        let token = token.into();
        if token.len() < 16 || !token.chars().all(|c| c.is_ascii_graphic()) {
            return Err(ApiError::new(
                ErrorKind::Invalid,
                "an API token must be at least 16 printable characters",
            )
            .field("OSHAL_API_TOKEN")
            .limit(16));
        }
        Ok(Self(token.into()))
    }

    /// A fresh random token (256 bits, hex).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the OS random source works");
        Self(crate::text::hex(&bytes).into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(super) fn matches(&self, presented: &str) -> bool {
        constant_time_eq::constant_time_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// The token an `Authorization` header value presents, if it is a bearer.
fn bearer(header: &str) -> Option<&str> {
    header.strip_prefix("Bearer ").map(str::trim)
}

/// Whether these headers carry this server's token (for a public route
/// that tells its holder more, such as health).
pub(super) fn holds_token(state: &AppState, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .is_some_and(|t| state.token.matches(t))
}

/// Whether `path` may carry the token as `?token=`.
fn query_token_allowed(path: &str) -> bool {
    ALL.iter()
        .any(|r| r.auth == Auth::BearerOrQuery && r.path == path)
}

/// The row of the table a request was routed to.
fn row_of(request: &Request) -> Option<&'static Route> {
    let matched = request.extensions().get::<axum::extract::MatchedPath>()?;
    ALL.iter()
        .find(|r| r.path == matched.as_str() && r.verb.method() == *request.method())
}

/// Whether `who` may call `row` at all (its handler then fences what it
/// sees). Deny by default: a row the gate cannot name is the operator's.
fn allowed(who: &Principal, row: Option<&Route>) -> Result<(), ApiError> {
    let Principal::Tenant { tenant, role } = who else {
        return Ok(());
    };
    let access = row.map_or(Access::Operator, |r| r.access);
    match (access, role) {
        (Access::Read, _) | (Access::Write, TokenRole::Operator) => Ok(()),
        (Access::Write, TokenRole::Viewer) => Err(ApiError::new(
            ErrorKind::Forbidden,
            format!("this token of tenant {tenant} is a viewer's: it reads, it does not write"),
        )),
        (Access::Operator, _) => Err(ApiError::new(
            ErrorKind::Forbidden,
            format!(
                "this token acts for tenant {tenant}; this route is the operator's (the server's own token)"
            ),
        )),
    }
}

/// Routes whose admitted reads the gate does not count: the counts
/// themselves (a surface polling them would make an idle controller look
/// busy).
const UNCOUNTED: [&str; 2] = ["/api/v1/flow", "/api/v1/series"];

/// The gate's decisions since it started (the architecture view's first
/// edge): every refusal, and every request let through but [`UNCOUNTED`].
#[derive(Debug, Default)]
pub struct GateCounters {
    pub admitted: std::sync::atomic::AtomicU64,
    pub refused: std::sync::atomic::AtomicU64,
}

impl GateCounters {
    pub fn counts(&self) -> crate::controller::GateCounts {
        use std::sync::atomic::Ordering::Relaxed;
        crate::controller::GateCounts {
            admitted: self.admitted.load(Relaxed),
            refused: self.refused.load(Relaxed),
        }
    }
}

/// The auth gate: a bearer token on every request (a `token` query
/// parameter is accepted for the event stream, which browsers cannot give
/// headers); the request goes on with its [`Principal`] and the time of the
/// decision ([`GateAt`]). Each decision is counted.
pub(super) async fn auth(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    match admit(&state, &mut request).await {
        Ok(()) => {
            if !UNCOUNTED.contains(&request.uri().path()) {
                state.gate.admitted.fetch_add(1, Relaxed);
            }
            next.run(request).await
        }
        Err(refusal) => {
            state.gate.refused.fetch_add(1, Relaxed);
            refusal
        }
    }
}

/// The gate's decision on one request: its principal attached, or the
/// refusal to answer.
async fn admit(state: &AppState, request: &mut Request) -> Result<(), Response> {
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let presented = match header {
        Some(h) => bearer(h),
        None if query_token_allowed(request.uri().path()) => request
            .uri()
            .query()
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token="))),
        None => None,
    };
    let Some(presented) = presented else {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "missing credentials: send Authorization: Bearer <token>",
        )
        .into_response());
    };
    let who = if state.token.matches(presented) {
        Principal::Operator
    } else {
        match state.tokens.resolve(presented).await {
            Ok(Some(who)) => who,
            Ok(None) => {
                return Err(
                    ApiError::new(ErrorKind::Unauthorized, "invalid API token").into_response()
                );
            }
            Err(e) => return Err(e.into_response()),
        }
    };
    allowed(&who, row_of(request)).map_err(IntoResponse::into_response)?;
    request.extensions_mut().insert(who);
    let at = state.controller.clock().now_ms();
    request.extensions_mut().insert(GateAt(at));
    Ok(())
}

/// When the gate admitted the request: a submission's tickets keep it
/// (`Ticket::gate_at_ms`, the routing view's gate hop).
#[derive(Debug, Clone, Copy)]
pub(super) struct GateAt(pub crate::clock::UnixMs);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::TenantId;

    /// Every row's access, for each kind of holder: the operator anywhere,
    /// a tenant's operator on reads and writes, a viewer on reads, neither
    /// on the operator's rows nor on a row the gate cannot name.
    #[test]
    fn each_holder_passes_only_the_rows_its_access_allows() {
        let tenant = |role| Principal::Tenant {
            tenant: TenantId::parse("acme").unwrap(),
            role,
        };
        let (op, viewer) = (tenant(TokenRole::Operator), tenant(TokenRole::Viewer));
        for row in ALL {
            assert!(allowed(&Principal::Operator, Some(row)).is_ok());
            let want_op = row.access != Access::Operator;
            let want_viewer = row.access == Access::Read;
            assert_eq!(allowed(&op, Some(row)).is_ok(), want_op, "{}", row.name);
            let v = allowed(&viewer, Some(row));
            assert_eq!(v.is_ok(), want_viewer, "{}", row.name);
            if let Err(e) = v {
                assert_eq!(e.kind, ErrorKind::Forbidden);
            }
        }
        assert!(allowed(&op, None).is_err(), "deny by default");
    }
}
