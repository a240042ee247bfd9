//! Content hashes: SHA-256 of a value's canonical JSON (object keys sorted,
//! no spaces), written `sha256:<hex>`. The same value hashes the same
//! whatever order its keys arrived in.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// `sha256:<hex>` of `value`'s canonical JSON.
pub fn of(value: &Value) -> String {
    let mut text = String::new();
    canonical(value, &mut text);
    format!(
        "sha256:{}",
        oshal_kernel::text::hex(&Sha256::digest(text.as_bytes()))
    )
}

/// `value` as canonical JSON.
pub fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b": [1, {"y": 2, "x": 1}], "a": "s"}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": "s", "b": [1, {"x": 1, "y": 2}]}"#).unwrap();
        assert_eq!(of(&a), of(&b));
        let mut text = String::new();
        canonical(&a, &mut text);
        assert_eq!(text, r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#);
        assert_ne!(of(&a), of(&serde_json::json!({"a": "t"})));
    }
}
