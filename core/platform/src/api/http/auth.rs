//! The auth gate: every route but the public ones requires the API token,
//! on loopback too (deny by default). The token is compared in constant
//! time and never logged; which routes are public, and which may take it as
//! `?token=` (the event socket, which browsers cannot give headers), is the
//! route table's word ([`Auth`]).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

use super::AppState;
use crate::api::routes::{ALL, Auth};
use crate::api::{ApiError, ErrorKind};

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

/// The auth gate: a bearer token on every request (a `token` query
/// parameter is accepted for the event stream, which browsers cannot give
/// headers).
pub(super) async fn auth(State(state): State<AppState>, request: Request, next: Next) -> Response {
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
    match presented {
        None => ApiError::new(
            ErrorKind::Unauthorized,
            "missing credentials: send Authorization: Bearer <token>",
        )
        .into_response(),
        Some(t) if !state.token.matches(t) => {
            ApiError::new(ErrorKind::Unauthorized, "invalid API token").into_response()
        }
        Some(_) => next.run(request).await,
    }
}
