//! Reading request bodies: a hard size limit (checked on the declared
//! length first), a deadline, and JSON parsed through `serde_path_to_error`,
//! so malformed input (400), a wrong field (422, naming its full path such
//! as `tickets[1].colour`) and too large (413) each come back as the one
//! error shape before anything changes.

use axum::body::Body;
use axum::http::{HeaderMap, header};

use super::ApiResult;
use crate::api::{ApiError, ErrorKind};
use crate::ticket::MAX_PAYLOAD_BYTES;

/// Room for the envelope around a maximal payload.
pub const MAX_BODY_BYTES: usize = MAX_PAYLOAD_BYTES + 64 * 1024;

/// Reads a body up to `MAX_BODY_BYTES` and parses it as JSON, telling
/// malformed input (400) from well-formed input with wrong fields (422).
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<T> {
    let bytes = read_limited(body, headers, MAX_BODY_BYTES).await?;
    let malformed = |e: &serde_json::Error| {
        ApiError::new(
            ErrorKind::Malformed,
            format!("request body is not valid JSON: {e}"),
        )
        .field("body")
    };
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let inner = e.inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                ApiError::new(ErrorKind::Invalid, format!("request body: {inner}")).field(
                    crate::text::field_path(&e.path().to_string(), &inner.to_string()),
                )
            }
            _ => malformed(inner),
        }
    })?;
    de.end().map_err(|e| malformed(&e))?;
    Ok(value)
}

/// Most of an oversized body read (and thrown away) so the client, still
/// sending, receives the 413 instead of a reset connection; past this the
/// connection is simply closed.
const DRAIN_LIMIT: u64 = 16 * 1024 * 1024;

/// Reads a body of at most `limit` bytes (the declared length is checked
/// first).
pub(super) async fn read_limited(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> ApiResult<Vec<u8>> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut total = 0u64;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let over = |n: u64| n > limit as u64;
    let drain_limit = DRAIN_LIMIT.max(limit as u64 + 1024 * 1024);
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorKind::Malformed,
                    "request body took too long to arrive",
                )
                .field("body"));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(
                    ApiError::new(ErrorKind::Malformed, format!("request body: {e}")).field("body"),
                );
            }
            Ok(Some(Ok(c))) => c,
        };
        total += chunk.len() as u64;
        if total > drain_limit {
            break;
        }
        if !over(total) && !declared.is_some_and(over) {
            buf.extend_from_slice(&chunk);
        }
    }
    if over(total) || declared.is_some_and(over) {
        return Err(too_large(total.max(declared.unwrap_or(0)), limit));
    }
    Ok(buf)
}

fn too_large(len: u64, limit: usize) -> ApiError {
    ApiError::new(
        ErrorKind::TooLarge,
        format!("request body is {len} bytes; the limit is {limit} bytes"),
    )
    .field("body")
    .limit(limit as u64)
}
