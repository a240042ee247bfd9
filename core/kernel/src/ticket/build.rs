//! What kind `build` carries: one step of a software build on files kept by
//! content hash (`sha256:<hex>`) in the ticket's tenant's space of the
//! bot's artifact root (the same space `media` steps use). `checkout` takes
//! sources from `inbox/`, `compile` builds a C program for one target,
//! `test` runs what a compile made, `deploy` places it in an environment.
//! The bot builds the compiler's and the program's arguments from these
//! typed fields alone and runs both in a sandbox (no file outside the
//! step's own directory and the system's, no network), so a payload cannot
//! name a path or pass an option of its own. The shape and the bounds are
//! checked here, at the edge.

use serde::{Deserialize, Serialize};
use specta::Type;

use super::TicketError;
use super::media::{artifact, file_name};

/// The most files one checkout takes and one compile builds from.
pub const MAX_BUILD_FILES: usize = 64;
/// The most arguments a `test` passes, and the longest each is.
pub const MAX_TEST_ARGS: usize = 16;
pub const MAX_TEST_ARG: usize = 256;
/// The longest text a `test` expects its program to print.
pub const MAX_EXPECT: usize = 1024;

/// One step of a build, by `op`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum BuildPayload {
    /// Takes `files` from the tenant's `inbox/` into its artifacts.
    /// Answers `{"files": [{"name", "artifact"}], "bytes", "tree"}`, where
    /// `tree` is the hash of the names and artifacts together.
    Checkout {
        /// 1..=64 file names in `inbox/` (each 1..=128 of A-Z, a-z, 0-9,
        /// '.', '_', '-', not starting with '.'), all different.
        #[schema(min_items = 1, max_items = 64)]
        files: Vec<String>,
    },
    /// Compiles the `.c` files of `files` (the others, headers, are there
    /// to be included) into one executable for `target`, named `output`.
    /// Answers `{"artifact", "bytes", "target", "machine", "compiler", "warnings"}`.
    Compile {
        /// 1..=64 files, as a checkout answers them; at least one `.c`.
        #[schema(min_items = 1, max_items = 64)]
        files: Vec<SourceFile>,
        target: BuildTarget,
        /// 1..=128 of A-Z, a-z, 0-9, '.', '_', '-', not starting with '.'.
        #[schema(
            min_length = 1,
            max_length = 128,
            pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
        )]
        output: String,
    },
    /// Runs the executable `input` with `args` in the sandbox; passes if it
    /// exits with 0 within 60 s and, given `expect`, prints it. Fails (not
    /// retryable) otherwise. Answers `{"passed": true, "exit_code", "stdout", "ms"}`.
    Test {
        #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
        input: String,
        /// 0..=16 arguments of 0..=256 bytes, no NUL.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schema(max_items = 16)]
        args: Vec<String>,
        /// 1..=1024 bytes the program must print on stdout; absent or
        /// empty: only the exit code counts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 1024)]
        expect: Option<String>,
    },
    /// Places `input` in the tenant's `published/<environment>/` as
    /// `name`, executable (replacing an earlier one atomically). Answers
    /// `{"artifact", "path"}`.
    Deploy {
        #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
        input: String,
        /// 1..=128 of A-Z, a-z, 0-9, '.', '_', '-', not starting with '.'.
        #[schema(
            min_length = 1,
            max_length = 128,
            pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
        )]
        environment: String,
        #[schema(
            min_length = 1,
            max_length = 128,
            pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
        )]
        name: String,
        /// A dry run: nothing is written; the answer says where it would be.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        dry_run: bool,
    },
}

/// A source file as a checkout answers it: its name in the build's
/// directory and the artifact holding its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceFile {
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
    )]
    pub name: String,
    #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
    pub artifact: String,
}

/// What a compile builds: the compiler's flags, by name. Each target is
/// built for the bot's own machine (`cc -dumpmachine`, in the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuildTarget {
    /// `-O0 -g`: for a debugger.
    Debug,
    /// `-O2 -DNDEBUG`.
    Release,
    /// `-Os -DNDEBUG -s`: the smallest.
    Size,
    /// `-O2` with fortified calls, a stack protector, a position-independent
    /// executable and read-only relocations.
    Hardened,
}

impl BuildTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            BuildTarget::Debug => "debug",
            BuildTarget::Release => "release",
            BuildTarget::Size => "size",
            BuildTarget::Hardened => "hardened",
        }
    }
}

fn invalid(field: &'static str, reason: String) -> TicketError {
    TicketError::Invalid { field, reason }
}

fn count(field: &'static str, n: usize, max: usize) -> Result<(), TicketError> {
    if (1..=max).contains(&n) {
        return Ok(());
    }
    Err(invalid(field, format!("holds {n}; 1..={max} are taken")))
}

fn distinct<'a>(
    field: &'static str,
    names: impl Iterator<Item = &'a String>,
) -> Result<(), TicketError> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        file_name(field, name)?;
        if !seen.insert(name) {
            return Err(invalid(field, format!("names {name:?} twice")));
        }
    }
    Ok(())
}

impl BuildPayload {
    /// The operation's name, as `op` spells it.
    pub fn op(&self) -> &'static str {
        match self {
            BuildPayload::Checkout { .. } => "checkout",
            BuildPayload::Compile { .. } => "compile",
            BuildPayload::Test { .. } => "test",
            BuildPayload::Deploy { .. } => "deploy",
        }
    }

    /// The checks of the shape and the bounds, each naming its field.
    pub fn check(&self) -> Result<(), TicketError> {
        match self {
            BuildPayload::Checkout { files } => {
                count("payload.files", files.len(), MAX_BUILD_FILES)?;
                distinct("payload.files", files.iter())
            }
            BuildPayload::Compile { files, output, .. } => {
                count("payload.files", files.len(), MAX_BUILD_FILES)?;
                distinct("payload.files", files.iter().map(|f| &f.name))?;
                files
                    .iter()
                    .try_for_each(|f| artifact("payload.files", &f.artifact))?;
                if !files.iter().any(|f| f.name.ends_with(".c")) {
                    return Err(invalid(
                        "payload.files",
                        "holds no .c file to compile".into(),
                    ));
                }
                file_name("payload.output", output)
            }
            BuildPayload::Test {
                input,
                args,
                expect,
            } => {
                artifact("payload.input", input)?;
                if args.len() > MAX_TEST_ARGS {
                    return Err(invalid(
                        "payload.args",
                        format!("holds {}; at most {MAX_TEST_ARGS}", args.len()),
                    ));
                }
                if let Some(a) = args
                    .iter()
                    .find(|a| a.len() > MAX_TEST_ARG || a.contains('\0'))
                {
                    return Err(invalid(
                        "payload.args",
                        format!(
                            "an argument of {} bytes; each is at most {MAX_TEST_ARG} bytes, with no NUL",
                            a.len()
                        ),
                    ));
                }
                match expect {
                    Some(e) if e.len() > MAX_EXPECT => Err(TicketError::TooLarge {
                        field: "payload.expect",
                        limit: MAX_EXPECT,
                        actual: e.len(),
                    }),
                    _ => Ok(()),
                }
            }
            BuildPayload::Deploy {
                input,
                environment,
                name,
                ..
            } => {
                artifact("payload.input", input)?;
                file_name("payload.environment", environment)?;
                file_name("payload.name", name)
            }
        }
    }

    /// The text a step passes on that a person or a spec wrote (a test's
    /// arguments and expected output), for the secret rules.
    pub fn free_text(&self) -> String {
        match self {
            BuildPayload::Test { args, expect, .. } => {
                let mut text = args.join("\n");
                text.push('\n');
                text.push_str(expect.as_deref().unwrap_or(""));
                text
            }
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<BuildPayload, String> {
        let p: BuildPayload = serde_json::from_value(v).map_err(|e| e.to_string())?;
        p.check().map_err(|e| e.to_string())?;
        Ok(p)
    }

    const A: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn each_op_parses_and_bad_fields_are_named() {
        assert!(parse(json!({"op": "checkout", "files": ["main.c", "util.h"]})).is_ok());
        assert!(
            parse(json!({"op": "compile", "files": [{"name": "main.c", "artifact": A}], "target": "release", "output": "hello"}))
                .is_ok()
        );
        assert!(
            parse(json!({"op": "test", "input": A, "args": ["--n", "3"], "expect": "ok"})).is_ok()
        );
        assert!(
            parse(json!({"op": "deploy", "input": A, "environment": "staging", "name": "hello"}))
                .is_ok()
        );

        let src = |name: &str| json!({"name": name, "artifact": A});
        for (bad, field) in [
            (json!({"op": "checkout", "files": []}), "payload.files"),
            (
                json!({"op": "checkout", "files": ["../main.c"]}),
                "payload.files",
            ),
            (
                json!({"op": "checkout", "files": ["a.c", "a.c"]}),
                "payload.files",
            ),
            (
                json!({"op": "compile", "files": [src("util.h")], "target": "release", "output": "x"}),
                "payload.files",
            ),
            (
                json!({"op": "compile", "files": [{"name": "a.c", "artifact": "sha256:1"}], "target": "debug", "output": "x"}),
                "payload.files",
            ),
            (
                json!({"op": "compile", "files": [src("a.c")], "target": "debug", "output": "/bin/sh"}),
                "payload.output",
            ),
            (
                json!({"op": "test", "input": A, "args": ["a\u{0}b"]}),
                "payload.args",
            ),
            (
                json!({"op": "test", "input": A, "args": vec!["x"; 17]}),
                "payload.args",
            ),
            (
                json!({"op": "test", "input": A, "expect": "x".repeat(1025)}),
                "payload.expect",
            ),
            (
                json!({"op": "deploy", "input": A, "environment": "..", "name": "x"}),
                "payload.environment",
            ),
        ] {
            let e = parse(bad.clone()).expect_err(&bad.to_string());
            assert!(e.starts_with(field), "{bad} → {e}");
        }
    }

    #[test]
    fn unknown_ops_targets_and_fields_are_refused_by_name() {
        let e = parse(json!({"op": "shell", "cmd": "make"})).unwrap_err();
        assert!(e.contains("unknown variant `shell`"), "{e}");
        let e = parse(
            json!({"op": "compile", "files": [{"name": "a.c", "artifact": A}], "target": "windows", "output": "x"}),
        )
        .unwrap_err();
        assert!(e.contains("unknown variant `windows`"), "{e}");
        let e = parse(
            json!({"op": "compile", "files": [{"name": "a.c", "artifact": A}], "target": "debug", "output": "x", "cflags": ["-fplugin=x"]}),
        )
        .unwrap_err();
        assert!(e.contains("unknown field `cflags`"), "{e}");
    }
}
