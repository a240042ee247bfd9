//! Evidence: every tool call an investigation makes, kept as it happened
//! (the tool, its parameters, its status, its result, a content hash of
//! the result and the query that replays the same lookup), and the bounds
//! an investigation runs within (steps, wall time, model tokens). A claim
//! of a diagnosis names the evidence it stands on by id. Pure logic.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use specta::Type;

use oshal_kernel::clock::UnixMs;

/// How a tool call ended (HolmesGPT's words).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    Type,
    utoipa::ToSchema,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ToolStatus {
    Success,
    Error,
    /// It answered, with nothing in it.
    NoData,
    /// It writes, and an investigation may not: it needs an approval.
    ApprovalRequired,
}

/// One tool call, as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Evidence {
    /// `E-<n>`, numbered per incident from 1.
    pub id: String,
    pub tool: String,
    #[specta(type = specta_typescript::Unknown)]
    pub params: Value,
    pub status: ToolStatus,
    #[specta(type = specta_typescript::Unknown)]
    pub result: Value,
    /// `sha256:` and 64 hex digits over the result's canonical JSON.
    pub hash: String,
    /// The same lookup, for a person to run again (`GET /api/v1/bots`).
    pub replay: String,
    #[specta(type = specta_typescript::Number)]
    pub at_ms: UnixMs,
}

/// The content hash of a result: SHA-256 over its JSON with object keys
/// in order (serde_json's map is ordered), so equal results hash equal.
pub fn content_hash(result: &Value) -> String {
    let canonical = serde_json::to_vec(result).expect("a JSON value serializes");
    format!(
        "sha256:{}",
        oshal_kernel::text::hex(&Sha256::digest(&canonical))
    )
}

impl Evidence {
    /// A record of a call; its hash is computed here, never given.
    pub fn record(
        id: String,
        tool: &str,
        params: Value,
        status: ToolStatus,
        result: Value,
        replay: String,
        at_ms: UnixMs,
    ) -> Self {
        let hash = content_hash(&result);
        Self {
            id,
            tool: tool.to_owned(),
            params,
            status,
            result,
            hash,
            replay,
            at_ms,
        }
    }

    /// Whether its result is still the one recorded.
    pub fn intact(&self) -> bool {
        content_hash(&self.result) == self.hash
    }
}

/// The bounds of one investigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Bounds {
    pub max_steps: u32,
    #[specta(type = specta_typescript::Number)]
    pub max_wall_ms: u64,
    pub max_tokens: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            max_steps: 20,
            max_wall_ms: 120_000,
            max_tokens: 8_000,
        }
    }
}

/// Why an investigation stopped taking steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Exhausted {
    #[error("it took its {0} steps")]
    Steps(u32),
    #[error("it ran its {0} ms")]
    Wall(u64),
    #[error("it used its {0} model tokens")]
    Tokens(u32),
}

/// What an investigation has used of its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spent {
    pub steps: u32,
    pub tokens: u32,
    pub started_ms: UnixMs,
}

impl Spent {
    pub fn starting(at_ms: UnixMs) -> Self {
        Self {
            started_ms: at_ms,
            ..Self::default()
        }
    }

    /// Whether one more step may be taken at `now_ms`; a runaway loop is
    /// stopped here, whatever the model asks for.
    pub fn may_step(&self, bounds: &Bounds, now_ms: UnixMs) -> Result<(), Exhausted> {
        if self.steps >= bounds.max_steps {
            return Err(Exhausted::Steps(bounds.max_steps));
        }
        if (now_ms - self.started_ms).max(0) as u64 >= bounds.max_wall_ms {
            return Err(Exhausted::Wall(bounds.max_wall_ms));
        }
        if self.tokens >= bounds.max_tokens {
            return Err(Exhausted::Tokens(bounds.max_tokens));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_results_hash_equal_and_a_change_shows() {
        let a = Evidence::record(
            "E-1".into(),
            "bots",
            json!({}),
            ToolStatus::Success,
            json!({"b": 1, "a": [1, 2]}),
            "GET /api/v1/bots".into(),
            5,
        );
        let b = content_hash(&json!({"a": [1, 2], "b": 1}));
        assert_eq!(a.hash, b, "key order does not matter");
        assert!(a.hash.starts_with("sha256:") && a.hash.len() == 71);
        assert!(a.intact());
        let mut tampered = a.clone();
        tampered.result = json!({"b": 2, "a": [1, 2]});
        assert!(!tampered.intact());
    }

    #[test]
    fn a_runaway_loop_is_stopped_by_its_bounds() {
        let bounds = Bounds {
            max_steps: 3,
            max_wall_ms: 1_000,
            max_tokens: 100,
        };
        let mut spent = Spent::starting(0);
        for _ in 0..3 {
            assert!(spent.may_step(&bounds, 10).is_ok());
            spent.steps += 1;
        }
        assert_eq!(spent.may_step(&bounds, 10), Err(Exhausted::Steps(3)));
        let spent = Spent::starting(0);
        assert_eq!(spent.may_step(&bounds, 1_000), Err(Exhausted::Wall(1_000)));
        let spent = Spent {
            tokens: 100,
            ..Spent::starting(0)
        };
        assert_eq!(spent.may_step(&bounds, 1), Err(Exhausted::Tokens(100)));
    }
}
