//! Reading the URL, and the last word on errors: every refusal leaves in
//! the one JSON error shape.
//!
//! [`Params`] and [`PathId`] replace axum's `Query` and `Path`, whose
//! rejections are plain text; theirs name the field (`state`, `id`).
//! [`one_error_shape`] wraps whatever error still leaves without a JSON body
//! — axum's own 405 (its `Allow` header kept), a WebSocket route asked
//! without an upgrade — in that shape, keeping its status.

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::api::{ApiError, ErrorBody, ErrorKind};

/// Query parameters parsed into `T`; a refusal names the parameter
/// (`state=a&state=b` → 422 on `state`, an unknown one → 422 on its name).
#[derive(Debug, Clone, Default)]
pub(super) struct Params<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Params)
    }
}

/// Parses a query string into `T`, naming the parameter a refusal is about.
pub(super) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        // `?tenant=` is neither a tenant nor "any tenant": leave it out for that.
        if value.is_empty() {
            return Err(ApiError::new(
                ErrorKind::Invalid,
                format!("query parameter {name} is empty; leave it out to mean any"),
            )
            .field(name.into_owned()));
        }
        if value.contains('\0') || name.contains('\0') {
            return Err(nul(&name));
        }
    }
    let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let message = e.inner().to_string();
        let field = ["duplicate field `", "unknown field `", "missing field `"]
            .iter()
            .find_map(|m| message.split(m).nth(1)?.split('`').next())
            .map(str::to_owned)
            .unwrap_or_else(|| crate::text::field_path(&e.path().to_string(), &message));
        let field = if field == "body" {
            "query".to_owned()
        } else {
            field
        };
        ApiError::new(
            ErrorKind::Invalid,
            format!("query parameter {field}: {message}"),
        )
        .field(field)
    })
}

/// The one `{id}` of a path, percent-decoded; one that is not UTF-8
/// (`%FF`) is refused naming `id`.
#[derive(Debug, Clone)]
pub(super) struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::Path;
        use axum::extract::rejection::PathRejection;
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) if id.contains('\0') => Err(nul("id")),
            Ok(Path(id)) => Ok(Self(id)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(ApiError::new(
                ErrorKind::Invalid,
                format!("path parameter id: {}", e.body_text()),
            )
            .field("id")),
            Err(e) => Err(ApiError::new(ErrorKind::Malformed, e.body_text()).field("id")),
        }
    }
}

/// A parameter holding U+0000, which no store can hold and no name, id or
/// filter contains: refused at the edge, before any store is asked.
fn nul(name: &str) -> ApiError {
    let name = name.replace('\0', "\\0");
    ApiError::new(
        ErrorKind::Invalid,
        format!("{name} holds U+0000 (NUL), which no store can hold"),
    )
    .field(name)
}

/// The most of a non-JSON error body kept as the message.
const MAX_MESSAGE: usize = 1024;

/// Gives every error response the one JSON shape, keeping its status and
/// headers. Responses that already carry JSON, and successes, pass as they
/// are.
pub(super) async fn one_error_shape(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let kind = match status.as_u16() {
        401 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        405 => ErrorKind::MethodNotAllowed,
        409 => ErrorKind::IllegalTransition,
        413 => ErrorKind::TooLarge,
        422 => ErrorKind::Invalid,
        429 => ErrorKind::Overloaded,
        503 => ErrorKind::StoreUnavailable,
        _ if status.is_client_error() => ErrorKind::Malformed,
        _ => ErrorKind::Internal,
    };
    let message = match kind {
        // A server's own failure says nothing of its insides.
        ErrorKind::Internal => "internal error; see the server log".to_owned(),
        ErrorKind::MethodNotAllowed => {
            let allow = parts
                .headers
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            format!("this route does not take that method; it takes {allow}")
        }
        _ => {
            let bytes = axum::body::to_bytes(body, MAX_MESSAGE * 4)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let text = crate::text::clip(text.trim(), MAX_MESSAGE);
            if text.is_empty() {
                status.canonical_reason().unwrap_or("refused").to_owned()
            } else {
                text.to_owned()
            }
        }
    };
    let body = serde_json::to_vec(&ErrorBody {
        error: ApiError::new(kind, message),
    })
    .unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{FindingsQuery, TicketFilter};

    #[test]
    fn a_repeated_or_unknown_parameter_is_refused_naming_it() {
        let e = parse_query::<TicketFilter>("state=queued&state=dead").unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (ErrorKind::Invalid, Some("state"))
        );
        let e = parse_query::<FindingsQuery>("colour=red").unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (ErrorKind::Invalid, Some("colour"))
        );
        let e = parse_query::<TicketFilter>("kind=%00").unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (ErrorKind::Invalid, Some("kind"))
        );
        let e = parse_query::<TicketFilter>("tenant=").unwrap_err();
        assert_eq!(
            (e.kind, e.field.as_deref()),
            (ErrorKind::Invalid, Some("tenant"))
        );
        let ok = parse_query::<TicketFilter>("state=queued&limit=5").unwrap();
        assert_eq!(ok.state.as_deref(), Some("queued"));
        assert_eq!(ok.limit.as_deref(), Some("5"));
    }
}
