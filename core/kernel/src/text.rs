//! Small text helpers several modules share: lowercase hex, cutting a
//! string to a byte limit without splitting a character, and text a store
//! can hold.
//!
//! PostgreSQL refuses U+0000 (NUL) in `text` and `jsonb` (SQLSTATE 22P05 and
//! 22021), and no other character a Rust `String` can hold. Text that comes
//! from outside after admission (a model's reply, a tool's answer, an
//! upstream error) is cleaned where it enters with [`clean`] or
//! [`clean_json`]: each NUL becomes U+FFFD and the caller says so in the
//! ticket's history ([`note`]). A submission holding one is refused at the
//! door instead ([`find_in_json`]), naming where: the submitter can fix it.
//! Pure logic.

use serde_json::Value;
use std::borrow::Cow;

/// The one character a store cannot hold.
pub const UNSTORABLE: char = '\0';
/// What replaces it: the Unicode replacement character.
pub const REPLACEMENT: char = '\u{FFFD}';

/// `s` without NULs, and how many it held.
pub fn clean(s: &str) -> (Cow<'_, str>, usize) {
    let n = s.matches(UNSTORABLE).count();
    if n == 0 {
        (Cow::Borrowed(s), 0)
    } else {
        (Cow::Owned(s.replace(UNSTORABLE, "\u{FFFD}")), n)
    }
}

/// Cleans `s` in place; returns how many NULs it replaced.
pub fn clean_string(s: &mut String) -> usize {
    let (cleaned, n) = clean(s);
    if let Cow::Owned(c) = cleaned {
        *s = c;
    }
    n
}

/// Cleans every string and object key in `v`; returns how many NULs it
/// replaced.
pub fn clean_json(v: &mut Value) -> usize {
    match v {
        Value::String(s) => clean_string(s),
        Value::Array(items) => items.iter_mut().map(clean_json).sum(),
        Value::Object(map) => {
            let dirty = map.keys().any(|k| k.contains(UNSTORABLE));
            let mut n: usize = map.values_mut().map(clean_json).sum();
            if dirty {
                let old = std::mem::take(map);
                for (mut k, v) in old {
                    n += clean_string(&mut k);
                    map.insert(k, v);
                }
            }
            n
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// Where the first NUL in `v` is, as a path below `at` (`params.note`,
/// `items[2]`), if there is one. Every submission's payload passes here, so
/// the path is built only on the way back from a NUL: a clean payload is
/// walked without allocating.
pub fn find_in_json(v: &Value, at: &str) -> Option<String> {
    let mut path = nul_path(v)?;
    path.reverse();
    let mut out = at.to_owned();
    for segment in path {
        if !out.is_empty() && !segment.starts_with('[') {
            out.push('.');
        }
        out.push_str(&segment);
    }
    Some(out)
}

/// The segments to the first NUL, innermost first.
fn nul_path(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => s.contains(UNSTORABLE).then(Vec::new),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let mut path = nul_path(item)?;
            path.push(format!("[{i}]"));
            Some(path)
        }),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            // A key holding a NUL is named with it escaped.
            let mut path = if key.contains(UNSTORABLE) {
                Vec::new()
            } else {
                nul_path(item)?
            };
            path.push(key.replace(UNSTORABLE, "\\0"));
            Some(path)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

/// What a history entry adds when text was cleaned: empty when none was.
pub fn note(replaced: usize) -> String {
    match replaced {
        0 => String::new(),
        1 => "; 1 NUL character (U+0000), which the store cannot hold, was replaced with U+FFFD"
            .into(),
        n => format!(
            "; {n} NUL characters (U+0000), which the store cannot hold, were replaced with U+FFFD"
        ),
    }
}

/// The field a JSON deserialisation error is about, as a dotted path
/// (`tickets[1].colour`; `body` for the document itself). `path` is where
/// `serde_path_to_error` stopped; a missing or unknown field is reported at
/// its parent, so its own name is added.
pub fn field_path(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `"].iter().find_map(|m| {
        message
            .split(m)
            .nth(1)
            .and_then(|rest| rest.split('`').next())
    });
    let path = path.trim_start_matches('.');
    match named {
        Some(name) if path.is_empty() => name.to_owned(),
        Some(name) if path != name && !path.ends_with(&format!(".{name}")) => {
            format!("{path}.{name}")
        }
        _ if path.is_empty() => "body".to_owned(),
        _ => path.to_owned(),
    }
}

/// `bytes` as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hex_and_clip() {
        assert_eq!(super::hex(&[0, 15, 255]), "000fff");
        assert_eq!(super::clip("héllo", 2), "h");
        assert_eq!(super::clip("héllo", 3), "hé");
        assert_eq!(super::clip("hi", 10), "hi");
    }

    #[test]
    fn clean_replaces_every_nul_and_borrows_clean_text() {
        let (c, n) = clean("a\0b\0");
        assert_eq!((c.as_ref(), n), ("a\u{FFFD}b\u{FFFD}", 2));
        assert!(matches!(clean("fine"), (Cow::Borrowed("fine"), 0)));
    }

    #[test]
    fn clean_json_reaches_nested_strings_and_keys() {
        let mut v = json!({"a\0": ["x\0", {"b": "\0"}], "n": 1, "ok": "yes"});
        assert_eq!(clean_json(&mut v), 3);
        assert_eq!(
            v,
            json!({"a\u{FFFD}": ["x\u{FFFD}", {"b": "\u{FFFD}"}], "n": 1, "ok": "yes"})
        );
        assert_eq!(find_in_json(&v, ""), None);
    }

    #[test]
    fn find_in_json_names_the_path() {
        let v = json!({"params": {"items": ["ok", "bad\0"]}});
        assert_eq!(
            find_in_json(&v, "payload").as_deref(),
            Some("payload.params.items[1]")
        );
        assert_eq!(
            find_in_json(&json!({"k\0": 1}), "").as_deref(),
            Some("k\\0")
        );
        assert_eq!(find_in_json(&json!({"k": [1, true, null]}), ""), None);
    }

    #[test]
    fn note_counts() {
        assert_eq!(note(0), "");
        assert!(note(1).contains("1 NUL character (U+0000)"));
        assert!(note(3).contains("3 NUL characters"));
    }
}
