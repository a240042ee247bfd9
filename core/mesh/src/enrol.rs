//! A new node's enrolment: the pre-auth key it joins with (tagged, single
//! use, expiring: Headscale's `reusable: false`, `ephemeral: false`,
//! `aclTags`, `expiration`) and the commands that join it to the tailnet
//! and start `oshal node` there.
//!
//! The key is shown once, to whoever enrolled the node; it is never
//! logged (`Debug` hides it) and never kept by Oshal.

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::Refusal;

/// The tag an Oshal node carries when none is named.
pub const NODE_TAG: &str = "tag:oshal-node";
/// Shortest and longest life of a pre-auth key, in seconds.
pub const MIN_EXPIRY_S: u32 = 60;
pub const MAX_EXPIRY_S: u32 = 7 * 24 * 3600;
/// Tags one node may be given.
pub const MAX_TAGS: usize = 16;

/// What an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    /// The node's host name in the tailnet and its `oshal node --name`:
    /// 1..=63 lowercase letters, digits and `-`, not starting or ending
    /// with `-`.
    #[schema(pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    /// The tags its key carries (`tag:NAME`); [`NODE_TAG`] when empty.
    #[serde(default)]
    #[schema(value_type = Vec<TagName>, max_items = 16)]
    pub tags: Vec<String>,
    /// How long the key may be used, in seconds (60..=604800); an hour
    /// when absent.
    #[serde(default)]
    #[schema(minimum = 60, maximum = 604800)]
    pub expires_in_s: Option<u32>,
}

impl Enrolment {
    /// The request checked: its name, tags and expiry, each refusal at its
    /// field.
    pub fn checked(mut self) -> Result<Self, Refusal> {
        let n = &self.name;
        let ok = !n.is_empty()
            && n.len() <= 63
            && !n.starts_with('-')
            && !n.ends_with('-')
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(Refusal::new(
                "name",
                format!("{n:?} is not a host name (1..=63 lowercase letters, digits or -, not at either end)"),
            )
            .limit(63));
        }
        if self.tags.is_empty() {
            self.tags.push(NODE_TAG.to_owned());
        }
        if self.tags.len() > MAX_TAGS {
            return Err(Refusal::new(
                "tags",
                format!("holds {} tags; the limit is {MAX_TAGS}", self.tags.len()),
            )
            .limit(MAX_TAGS));
        }
        for (i, t) in self.tags.iter().enumerate() {
            let name = t.strip_prefix("tag:").unwrap_or("");
            let ok = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(Refusal::new(
                    format!("tags[{i}]"),
                    format!(
                        "{t:?} is not a tag (tag:NAME, NAME of 1..=63 letters, digits, - or _)"
                    ),
                )
                .limit(63));
            }
        }
        let s = self.expires_in_s.unwrap_or(3600);
        if !(MIN_EXPIRY_S..=MAX_EXPIRY_S).contains(&s) {
            return Err(Refusal::new(
                "expires_in_s",
                format!("{s} is outside {MIN_EXPIRY_S}..={MAX_EXPIRY_S} seconds"),
            )
            .limit(MAX_EXPIRY_S as usize));
        }
        self.expires_in_s = Some(s);
        Ok(self)
    }
}

/// A tag as the contract shows it (`tag:NAME`).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, pattern = "^tag:[A-Za-z0-9_-]{1,63}$")]
pub struct TagName(pub String);

/// Where a new node joins and what it then talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joining<'a> {
    /// Headscale's URL, the node's `--login-server`.
    pub login_server: &'a str,
    /// The fleet's Redis as the node reaches it over the mesh.
    pub redis_url: &'a str,
    pub redis_prefix: &'a str,
}

/// A key minted and the commands that use it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Enrolled {
    pub name: String,
    pub tags: Vec<String>,
    /// The pre-auth key, shown once.
    pub key: String,
    #[specta(type = specta_typescript::Number)]
    pub expires_ms: i64,
    /// Run on the new host, in order.
    pub commands: Vec<String>,
    /// What the commands leave to the person running them.
    pub notes: Vec<String>,
}

impl std::fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrolled")
            .field("name", &self.name)
            .field("tags", &self.tags)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// The commands that join `e`'s host with `key` and start its node. A
/// Redis URL holding a password is not printed: the node reads it from
/// `OSHAL_REDIS`.
pub fn enrolled(e: &Enrolment, key: String, expires_ms: i64, at: &Joining<'_>) -> Enrolled {
    let mut notes = Vec::new();
    let tags = e.tags.join(",");
    let mut commands = vec![format!(
        "tailscale up --login-server={} --authkey={} --hostname={} --advertise-tags={tags}",
        quoted(at.login_server),
        quoted(&key),
        e.name
    )];
    let secret_in_url = url_has_password(at.redis_url);
    let redis = if secret_in_url {
        notes.push(
            "the fleet's Redis URL holds a password: set OSHAL_REDIS on the host to it; it is not printed here".to_owned(),
        );
        String::new()
    } else {
        format!(" --redis={}", quoted(at.redis_url))
    };
    commands.push(format!(
        "oshal node{redis} --redis-prefix={} --name={}",
        quoted(at.redis_prefix),
        e.name
    ));
    notes.push(format!(
        "the key works once and expires in {} s; a node that has not joined by then needs a new one",
        e.expires_in_s.unwrap_or(3600)
    ));
    Enrolled {
        name: e.name.clone(),
        tags: e.tags.clone(),
        key,
        expires_ms,
        commands,
        notes,
    }
}

/// `s` as one POSIX shell word: single-quoted, a `'` in it closed, escaped
/// and reopened.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn url_has_password(url: &str) -> bool {
    url.split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
        .and_then(|auth| auth.rsplit_once('@'))
        .is_some_and(|(user, _)| user.contains(':') || !user.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Joining<'static> {
        Joining {
            login_server: "https://hs.example.net",
            redis_url: "redis://100.64.0.1:6379",
            redis_prefix: "oshal",
        }
    }

    #[test]
    fn a_request_is_checked_field_by_field() {
        let e = Enrolment {
            name: "gpu-7".into(),
            tags: vec![],
            expires_in_s: None,
        }
        .checked()
        .expect("valid");
        assert_eq!(e.tags, [NODE_TAG]);
        assert_eq!(e.expires_in_s, Some(3600));
        for (bad, field) in [
            (
                Enrolment {
                    name: "GPU 7".into(),
                    tags: vec![],
                    expires_in_s: None,
                },
                "name",
            ),
            (
                Enrolment {
                    name: "-a".into(),
                    tags: vec![],
                    expires_in_s: None,
                },
                "name",
            ),
            (
                Enrolment {
                    name: "a".into(),
                    tags: vec!["oshal".into()],
                    expires_in_s: None,
                },
                "tags[0]",
            ),
            (
                Enrolment {
                    name: "a".into(),
                    tags: vec![],
                    expires_in_s: Some(5),
                },
                "expires_in_s",
            ),
        ] {
            assert_eq!(bad.checked().expect_err("refused").path, field);
        }
    }

    #[test]
    fn the_commands_join_the_host_and_start_its_node() {
        let e = Enrolment {
            name: "gpu-7".into(),
            tags: vec!["tag:oshal-node".into(), "tag:gpu".into()],
            expires_in_s: Some(600),
        }
        .checked()
        .expect("valid");
        let out = enrolled(&e, "hskey-auth-abc".into(), 1, &at());
        assert_eq!(
            out.commands,
            [
                "tailscale up --login-server='https://hs.example.net' --authkey='hskey-auth-abc' --hostname=gpu-7 --advertise-tags=tag:oshal-node,tag:gpu",
                "oshal node --redis='redis://100.64.0.1:6379' --redis-prefix='oshal' --name=gpu-7",
            ]
        );
        assert!(
            !format!("{out:?}").contains("hskey-auth-abc"),
            "Debug hides the key"
        );
    }

    /// Node `n1` enrolled with key `k` to join as `joining` says.
    fn n1_joining(joining: Joining<'_>) -> Enrolled {
        let e = Enrolment {
            name: "n1".into(),
            tags: vec![],
            expires_in_s: None,
        }
        .checked()
        .expect("valid");
        enrolled(&e, "k".into(), 1, &joining)
    }

    #[test]
    fn what_the_operator_configured_is_one_shell_word_each() {
        assert_eq!(quoted("a'b"), "'a'\\''b'");
        let out = n1_joining(Joining {
            redis_prefix: "o'shal",
            ..at()
        });
        assert!(
            out.commands[1].contains("--redis-prefix='o'\\''shal'"),
            "{:?}",
            out.commands
        );
    }

    #[test]
    fn a_redis_password_is_never_printed() {
        let out = n1_joining(Joining {
            redis_url: "redis://:s3cret@100.64.0.1:6379",
            ..at()
        });
        assert!(out.commands.iter().all(|c| !c.contains("s3cret")));
        assert!(out.commands[1].starts_with("oshal node --redis-prefix"));
        assert!(out.notes[0].contains("OSHAL_REDIS"));
    }
}
