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
/// malformed input (400) from well-formed input with wrong fields (422),
/// and refusing U+0000 anywhere in it (422, naming where).
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<T> {
    let bytes = read_limited(body, headers, MAX_BODY_BYTES).await?;
    refuse_nul(&bytes)?;
    parse_json(&bytes)
}

/// As [`json_body`], for submissions: the ticket checks (`NewTicket`'s
/// validation) refuse a U+0000 themselves, per ticket, so one such ticket
/// in a batch is refused on its own and the others are admitted.
pub(super) async fn tickets_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<T> {
    let bytes = read_limited(body, headers, MAX_BODY_BYTES).await?;
    parse_json(&bytes)
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let malformed = |e: &serde_json::Error| {
        ApiError::new(
            ErrorKind::Malformed,
            format!("request body is not valid JSON: {e}"),
        )
        .field("body")
    };
    // Every body is a JSON object: serde would take a struct from an array
    // of its fields in order, which no client means.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b == b'[') {
        return Err(
            ApiError::new(ErrorKind::Invalid, "request body: expected a JSON object").field("body"),
        );
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let error = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => {
            de.end().map_err(|e| malformed(&e))?;
            return Ok(value);
        }
        Err(e) => e,
    };
    let inner = error.inner();
    if inner.classify() != serde_json::error::Category::Data {
        return Err(malformed(inner));
    }
    // JSON has one kind of number: `3.0` is the integer 3 to a JSON Schema
    // reader, so a client may send it. Only a refused body pays for this.
    if inner.to_string().contains("invalid type: floating point")
        && let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes)
    {
        integral_floats_to_integers(&mut value);
        if let Ok(v) = serde_path_to_error::deserialize(value) {
            return Ok(v);
        }
    }
    Err(
        ApiError::new(ErrorKind::Invalid, format!("request body: {inner}")).field(
            crate::text::field_path(&error.path().to_string(), &inner.to_string()),
        ),
    )
}

/// Refuses a body holding U+0000 anywhere, naming where: no store holds it
/// (PostgreSQL refuses it in `text` and `jsonb`), so it is turned away at
/// the edge, before anything is written. JSON can only carry it escaped, so
/// only a body containing `u0000` is looked at closely.
fn refuse_nul(bytes: &[u8]) -> ApiResult<()> {
    let escaped = bytes
        .windows(5)
        .any(|w| w[0] == b'u' && w[1..].iter().all(|b| *b == b'0'));
    if !escaped {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(()); // Malformed: the parse that follows says so.
    };
    match crate::text::find_in_json(&value, "") {
        None => Ok(()),
        Some(at) => {
            let at = if at.is_empty() { "body".to_owned() } else { at };
            Err(ApiError::new(
                ErrorKind::Invalid,
                format!("{at} holds U+0000 (NUL), which no store can hold; remove it"),
            )
            .field(at))
        }
    }
}

/// Rewrites every float with no fraction that fits an integer (`342.0`)
/// as that integer.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                *n = serde_json::Number::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A grant's condition or a SARIF message holding U+0000 would reach a
    /// `jsonb` column and be refused there as "store unavailable" (503):
    /// it is refused here, naming where it is.
    #[test]
    fn a_nul_anywhere_in_a_body_is_refused_naming_where() {
        let e = refuse_nul(br#"{"conditions":[{"param":"a\u0000"}]}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert_eq!(e.field.as_deref(), Some("conditions[0].param"));
        assert!(refuse_nul(br#"{"note":"\\u0000 is how JSON writes it"}"#).is_ok());
        assert!(refuse_nul(br#"{"n":10000}"#).is_ok());
    }

    #[test]
    fn integral_floats_read_as_integers() {
        let mut v = serde_json::json!({"days": 342.0, "x": [1.5, 2.0]});
        integral_floats_to_integers(&mut v);
        assert_eq!(v, serde_json::json!({"days": 342, "x": [1.5, 2]}));
    }
}
