//! `${{ … }}` in a task's payload, resolved when the node starts.
//!
//! What may be named: `inputs.<name>`, `item` (a `with_items` fan-out's
//! item), `matrix.<key>`, `nodes.<name>.output` (an upstream node's
//! output; a fan-out's is the list of its items' outputs) and `run.id`,
//! each followed by `.field` or `[index]` steps into the value; `[*]`
//! takes the steps after it into each item of a list
//! (`nodes.shards.output[*].artifact` is the list of every shard's). A string
//! that is one placeholder and nothing else becomes the value itself,
//! whatever its type; a placeholder inside longer text is written into it
//! (a string as it is, anything else as JSON). Only string values are
//! read; object keys never are.

use serde_json::{Map, Value};

/// A step into a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
    /// `[*]`: the steps after it, into each item of a list.
    Each,
}

/// What a placeholder names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ref {
    Input(String, Vec<Step>),
    Item(Vec<Step>),
    Matrix(String),
    Output(String, Vec<Step>),
    RunId,
}

/// What placeholders are resolved against.
pub struct Scope<'a> {
    pub run_id: &'a str,
    pub inputs: &'a Map<String, Value>,
    pub item: Option<&'a Value>,
    pub matrix: Option<&'a Map<String, Value>>,
    /// An upstream node's output, by node name.
    pub output: &'a dyn Fn(&str) -> Option<Value>,
}

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

/// Every placeholder in `value`, with the path of the string it is in
/// (relative, `.prompt`, `.args[2]`), or the first that does not parse.
pub fn refs(value: &Value, at: &str) -> Result<Vec<(String, Ref)>, (String, String)> {
    let mut out = Vec::new();
    walk(value, at, &mut |path, s| {
        for piece in pieces(s).map_err(|e| (path.to_owned(), e))? {
            if let Piece::Ref(r) = piece {
                out.push((path.to_owned(), r));
            }
        }
        Ok(())
    })?;
    Ok(out)
}

/// `value` with every placeholder replaced, or why one could not be.
pub fn resolve(value: &Value, scope: &Scope<'_>) -> Result<Value, String> {
    match value {
        Value::String(s) if s.contains(OPEN) => {
            let parts = pieces(s)?;
            if let [Piece::Ref(r)] = parts.as_slice() {
                return lookup(r, scope);
            }
            let mut text = String::new();
            for p in parts {
                match p {
                    Piece::Text(t) => text.push_str(&t),
                    Piece::Ref(r) => match lookup(&r, scope)? {
                        Value::String(v) => text.push_str(&v),
                        v => text.push_str(&v.to_string()),
                    },
                }
            }
            Ok(Value::String(text))
        }
        Value::Array(items) => items
            .iter()
            .map(|v| resolve(v, scope))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), resolve(v, scope)?)))
            .collect::<Result<Map<_, _>, String>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

/// One `${{ … }}` string (what `with_items` and a group name may be).
pub fn resolve_text(text: &str, scope: &Scope<'_>) -> Result<Value, String> {
    resolve(&Value::String(text.to_owned()), scope)
}

fn walk(
    value: &Value,
    at: &str,
    f: &mut impl FnMut(&str, &str) -> Result<(), (String, String)>,
) -> Result<(), (String, String)> {
    match value {
        Value::String(s) => f(at, s),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| walk(v, &format!("{at}[{i}]"), f)),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| walk(v, &format!("{at}.{k}"), f)),
        _ => Ok(()),
    }
}

enum Piece {
    Text(String),
    Ref(Ref),
}

fn pieces(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find(OPEN) {
        if start > 0 {
            out.push(Piece::Text(rest[..start].to_owned()));
        }
        let after = &rest[start + OPEN.len()..];
        let end = after
            .find(CLOSE)
            .ok_or_else(|| format!("\"{OPEN}\" without \"{CLOSE}\" in {s:?}"))?;
        out.push(Piece::Ref(parse_ref(after[..end].trim())?));
        rest = &after[end + CLOSE.len()..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_owned()));
    }
    Ok(out)
}

fn parse_ref(text: &str) -> Result<Ref, String> {
    let steps = parse_steps(text)?;
    let name = |i: usize| match steps.get(i) {
        Some(Step::Key(k)) => Ok(k.clone()),
        _ => Err(format!(
            "${{{{ {text} }}}}: expected a name after the {i}th step"
        )),
    };
    let head = match steps.first() {
        Some(Step::Key(k)) => k.as_str(),
        _ => return Err(format!("${{{{ {text} }}}} names nothing")),
    };
    let unknown = || {
        format!(
            "${{{{ {text} }}}}: a placeholder names inputs.<name>, item, matrix.<key>, nodes.<name>.output or run.id"
        )
    };
    match head {
        "inputs" => Ok(Ref::Input(name(1)?, steps[2..].to_vec())),
        "item" => Ok(Ref::Item(steps[1..].to_vec())),
        "matrix" if steps.len() == 2 => Ok(Ref::Matrix(name(1)?)),
        "nodes" if matches!(steps.get(2), Some(Step::Key(k)) if k == "output") => {
            Ok(Ref::Output(name(1)?, steps[3..].to_vec()))
        }
        "run" if steps.len() == 2 && name(1)? == "id" => Ok(Ref::RunId),
        _ => Err(unknown()),
    }
}

fn parse_steps(text: &str) -> Result<Vec<Step>, String> {
    let bad = || {
        format!("${{{{ {text} }}}} is not a path such as inputs.name or nodes.a.output.items[0]")
    };
    let mut steps = Vec::new();
    for part in text.split('.') {
        let (key, mut indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(bad());
        }
        steps.push(Step::Key(key.to_owned()));
        while !indexes.is_empty() {
            let close = indexes.find(']').ok_or_else(bad)?;
            let inside = &indexes[1..close];
            if inside == "*" {
                steps.push(Step::Each);
            } else {
                steps.push(Step::Index(inside.parse().map_err(|_| bad())?));
            }
            indexes = &indexes[close + 1..];
            if !indexes.is_empty() && !indexes.starts_with('[') {
                return Err(bad());
            }
        }
    }
    Ok(steps)
}

fn lookup(r: &Ref, scope: &Scope<'_>) -> Result<Value, String> {
    let (root, steps, what) = match r {
        Ref::RunId => return Ok(Value::String(scope.run_id.to_owned())),
        Ref::Input(name, steps) => (
            scope
                .inputs
                .get(name)
                .cloned()
                .ok_or_else(|| format!("the run has no input {name:?}"))?,
            steps,
            format!("inputs.{name}"),
        ),
        Ref::Item(steps) => (
            scope
                .item
                .cloned()
                .ok_or("`item` is only known in a with_items fan-out")?,
            steps,
            "item".to_owned(),
        ),
        Ref::Matrix(key) => {
            return scope
                .matrix
                .and_then(|m| m.get(key))
                .cloned()
                .ok_or_else(|| format!("the matrix has no key {key:?}"));
        }
        Ref::Output(node, steps) => (
            (scope.output)(node).ok_or_else(|| format!("node {node:?} has no output yet"))?,
            steps,
            format!("nodes.{node}.output"),
        ),
    };
    follow(&root, steps, what)
}

/// `steps` taken into `v`, whose place is `at` (for the error).
fn follow(v: &Value, steps: &[Step], mut at: String) -> Result<Value, String> {
    let mut v = v;
    for (k, s) in steps.iter().enumerate() {
        v = match s {
            Step::Key(key) => {
                at.push('.');
                at.push_str(key);
                v.get(key.as_str())
            }
            Step::Index(i) => {
                at.push_str(&format!("[{i}]"));
                v.get(*i)
            }
            Step::Each => {
                let items = v
                    .as_array()
                    .ok_or_else(|| format!("{at} is not a list, so [*] cannot step into it"))?;
                return items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| follow(item, &steps[k + 1..], format!("{at}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array);
            }
        }
        .ok_or_else(|| format!("{at} is not in the value"))?;
    }
    Ok(v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope_with<'a>(
        inputs: &'a Map<String, Value>,
        item: Option<&'a Value>,
        output: &'a dyn Fn(&str) -> Option<Value>,
    ) -> Scope<'a> {
        Scope {
            run_id: "run-1",
            inputs,
            item,
            matrix: None,
            output,
        }
    }

    #[test]
    fn a_lone_placeholder_keeps_its_type_and_text_takes_it_written() {
        let inputs = json!({"branch": "main", "n": 3})
            .as_object()
            .unwrap()
            .clone();
        let item = json!({"start": 2, "end": 4});
        let out = |n: &str| (n == "probe").then(|| json!({"segments": [{"s": 0}, {"s": 2}]}));
        let scope = scope_with(&inputs, Some(&item), &out);
        let payload = json!({
            "n": "${{ inputs.n }}",
            "text": "branch ${{inputs.branch}} from ${{ item.start }}s, run ${{ run.id }}",
            "seg": "${{ nodes.probe.output.segments[1] }}",
            "keep": 7,
        });
        let done = resolve(&payload, &scope).unwrap();
        assert_eq!(
            done,
            json!({"n": 3, "text": "branch main from 2s, run run-1", "seg": {"s": 2}, "keep": 7})
        );
        let found = refs(&payload, "$.task.payload").unwrap();
        assert_eq!(found.len(), 5);
        assert!(found.contains(&(
            "$.task.payload.seg".into(),
            Ref::Output(
                "probe".into(),
                vec![Step::Key("segments".into()), Step::Index(1)]
            )
        )));
    }

    #[test]
    fn each_steps_into_every_item_of_a_list() {
        let inputs = Map::new();
        let out = |n: &str| {
            (n == "shards")
                .then(|| json!([{"artifact": "a", "n": [1]}, {"artifact": "b", "n": [2]}]))
        };
        let scope = scope_with(&inputs, None, &out);
        let all = resolve_text("${{ nodes.shards.output[*].artifact }}", &scope).unwrap();
        assert_eq!(all, json!(["a", "b"]));
        let nested = resolve_text("${{ nodes.shards.output[*].n[0] }}", &scope).unwrap();
        assert_eq!(nested, json!([1, 2]));
        let e = resolve_text("${{ nodes.shards.output[0].artifact[*] }}", &scope).unwrap_err();
        assert!(
            e.contains("nodes.shards.output[0].artifact is not a list"),
            "{e}"
        );
        let e = resolve_text("${{ nodes.shards.output[*].size }}", &scope).unwrap_err();
        assert!(
            e.contains("nodes.shards.output[0].size is not in the value"),
            "{e}"
        );
    }

    #[test]
    fn what_cannot_resolve_says_why() {
        let inputs = Map::new();
        let out = |_: &str| None;
        let scope = scope_with(&inputs, None, &out);
        for (text, says) in [
            ("${{ inputs.x }}", "no input \"x\""),
            ("${{ item }}", "only known in a with_items"),
            ("${{ nodes.a.output }}", "has no output yet"),
            ("${{ nodes.a }}", "a placeholder names"),
            ("${{ inputs.x[z] }}", "is not a path"),
            ("${{ inputs.x", "without \"}}\""),
            ("${{ }}", "is not a path"),
        ] {
            let e = resolve_text(text, &scope).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        let e = refs(&json!({"a": ["ok", "${{ wat }}"]}), "$.p").unwrap_err();
        assert_eq!(e.0, "$.p.a[1]");
    }
}
