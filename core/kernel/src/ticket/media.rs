//! What kind `media` carries: one step of media work on artifacts kept by
//! content hash (`sha256:<hex>`) in the ticket's tenant's space of the
//! bot's media root. The bot runs
//! `ffmpeg`/`ffprobe` with arguments it builds from these typed fields
//! alone, never from text a spec or a model wrote, so a payload cannot name
//! a file outside the media root or pass an option of its own. The shape
//! and the bounds are checked here, at the edge.

use serde::{Deserialize, Serialize};
use specta::Type;

use super::TicketError;

/// The longest stretch one `transcode` covers: one hour.
pub const MAX_MEDIA_SPAN_MS: u64 = 3_600_000;
/// The most artifacts one `concat` joins.
pub const MAX_CONCAT_INPUTS: usize = 1000;
/// The longest file name `ingest` takes or `publish` gives.
pub const MAX_MEDIA_NAME: usize = 128;

/// One step of media work, by `op`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum MediaPayload {
    /// Takes `source` from the tenant's `inbox/` into its artifacts.
    /// Answers `{"artifact", "bytes"}`.
    Ingest {
        /// A file name in `inbox/`: 1..=128 of A-Z, a-z, 0-9, '.', '_', '-',
        /// not starting with '.'.
        #[schema(
            min_length = 1,
            max_length = 128,
            pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]*$"
        )]
        source: String,
    },
    /// Reads an artifact's video stream (`ffprobe`) and, given
    /// `segment_seconds`, plans the segments a fan-out transcodes (at most
    /// 400: past that, wider ones). Answers
    /// `{"duration_ms", "width", "height", "codec", "frame_rate", "segments": [{"index", "start_ms", "duration_ms"}]}`.
    Probe {
        #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
        input: String,
        /// 1..=3600; absent: one segment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 1, maximum = 3600)]
        segment_seconds: Option<u32>,
    },
    /// Encodes `[start_ms, start_ms + duration_ms)` of `input` with `codec`,
    /// scaled to `height` if given, reporting progress as it goes.
    /// Answers `{"artifact", "bytes", "duration_ms"}`.
    Transcode {
        #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
        input: String,
        #[specta(type = specta_typescript::Number)]
        start_ms: u64,
        /// 1..=3,600,000.
        #[specta(type = specta_typescript::Number)]
        #[schema(minimum = 1, maximum = 3_600_000)]
        duration_ms: u64,
        codec: VideoCodec,
        /// 16..=4320, even; absent: the input's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 16, maximum = 4320)]
        height: Option<u32>,
        /// 0..=51 (h264) or 0..=63 (vp9); absent: the codec's default.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(maximum = 63)]
        crf: Option<u8>,
    },
    /// Joins artifacts in order without encoding again (all must share a
    /// codec). Answers `{"artifact", "bytes", "duration_ms"}`.
    Concat {
        /// 1..=1000 artifacts.
        #[schema(min_items = 1, max_items = 1000)]
        inputs: Vec<String>,
    },
    /// The automatic quality check: fails (not retryable) unless `input`'s
    /// duration is within `tolerance_ms` of `duration_ms` and, given a
    /// `reference`, its SSIM against it is at least `min_ssim`. Answers
    /// `{"passed": true, "duration_ms", "ssim", "width", "height", "codec"}`.
    Check {
        #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
        input: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
        reference: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[specta(type = Option<specta_typescript::Number>)]
        duration_ms: Option<u64>,
        /// Absent: 100 ms.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[specta(type = Option<specta_typescript::Number>)]
        tolerance_ms: Option<u64>,
        /// 0..=1; needs `reference`. Absent: 0.9.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(minimum = 0, maximum = 1)]
        min_ssim: Option<f64>,
    },
    /// Places an artifact in the tenant's `published/` as `name`
    /// (replacing an earlier one atomically). Answers `{"artifact", "path"}`.
    Publish {
        #[schema(pattern = "^sha256:[0-9a-f]{64}$")]
        input: String,
        /// 1..=128 of A-Z, a-z, 0-9, '.', '_', '-', not starting with '.'.
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

/// The codecs a `transcode` may ask for (what Debian's ffmpeg builds with).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VideoCodec {
    H264,
    Vp9,
    Mpeg4,
}

impl VideoCodec {
    /// The highest `crf` the codec takes; `mpeg4` takes none.
    pub fn max_crf(self) -> Option<u8> {
        match self {
            VideoCodec::H264 => Some(51),
            VideoCodec::Vp9 => Some(63),
            VideoCodec::Mpeg4 => None,
        }
    }
}

fn invalid(field: &'static str, reason: String) -> TicketError {
    TicketError::Invalid { field, reason }
}

/// Whether `id` is an artifact id: `sha256:` and 64 lowercase hex digits.
pub fn is_artifact_id(id: &str) -> bool {
    id.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub(super) fn artifact(field: &'static str, id: &str) -> Result<(), TicketError> {
    if is_artifact_id(id) {
        return Ok(());
    }
    Err(invalid(
        field,
        format!(
            "{:?} is not an artifact id (\"sha256:\" and 64 lowercase hex digits, as an earlier step answered)",
            crate::text::clip(id, 80)
        ),
    ))
}

/// Whether `name` is a safe file name: no directory, no hidden file.
pub fn is_media_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_MEDIA_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(super) fn file_name(field: &'static str, name: &str) -> Result<(), TicketError> {
    if is_media_name(name) {
        return Ok(());
    }
    Err(invalid(
        field,
        format!(
            "{:?} must be 1 to {MAX_MEDIA_NAME} of A-Z, a-z, 0-9, '.', '_', '-', not starting with '.'",
            crate::text::clip(name, 80)
        ),
    ))
}

impl MediaPayload {
    /// The operation's name, as `op` spells it.
    pub fn op(&self) -> &'static str {
        match self {
            MediaPayload::Ingest { .. } => "ingest",
            MediaPayload::Probe { .. } => "probe",
            MediaPayload::Transcode { .. } => "transcode",
            MediaPayload::Concat { .. } => "concat",
            MediaPayload::Check { .. } => "check",
            MediaPayload::Publish { .. } => "publish",
        }
    }

    /// The checks of the shape and the bounds, each naming its field.
    pub fn check(&self) -> Result<(), TicketError> {
        match self {
            MediaPayload::Ingest { source } => file_name("payload.source", source),
            MediaPayload::Probe {
                input,
                segment_seconds,
            } => {
                artifact("payload.input", input)?;
                match segment_seconds {
                    Some(s) if !(1..=3600).contains(s) => Err(invalid(
                        "payload.segment_seconds",
                        format!("{s} is outside 1..=3600"),
                    )),
                    _ => Ok(()),
                }
            }
            MediaPayload::Transcode {
                input,
                duration_ms,
                codec,
                height,
                crf,
                ..
            } => {
                artifact("payload.input", input)?;
                if !(1..=MAX_MEDIA_SPAN_MS).contains(duration_ms) {
                    return Err(invalid(
                        "payload.duration_ms",
                        format!("{duration_ms} is outside 1..={MAX_MEDIA_SPAN_MS}"),
                    ));
                }
                if let Some(h) = height
                    && (!(16..=4320).contains(h) || h % 2 == 1)
                {
                    return Err(invalid(
                        "payload.height",
                        format!("{h} must be even and within 16..=4320"),
                    ));
                }
                match (crf, codec.max_crf()) {
                    (Some(_), None) => Err(invalid(
                        "payload.crf",
                        "mpeg4 takes no crf; leave it out".into(),
                    )),
                    (Some(c), Some(max)) if *c > max => Err(invalid(
                        "payload.crf",
                        format!("{c} is outside 0..={max} for this codec"),
                    )),
                    _ => Ok(()),
                }
            }
            MediaPayload::Concat { inputs } => {
                if inputs.is_empty() || inputs.len() > MAX_CONCAT_INPUTS {
                    return Err(invalid(
                        "payload.inputs",
                        format!(
                            "holds {} artifacts; 1..={MAX_CONCAT_INPUTS} are joined",
                            inputs.len()
                        ),
                    ));
                }
                inputs
                    .iter()
                    .try_for_each(|i| artifact("payload.inputs", i))
            }
            MediaPayload::Check {
                input,
                reference,
                min_ssim,
                ..
            } => {
                artifact("payload.input", input)?;
                if let Some(r) = reference {
                    artifact("payload.reference", r)?;
                }
                match min_ssim {
                    Some(s) if !(0.0..=1.0).contains(s) => {
                        Err(invalid("payload.min_ssim", format!("{s} is outside 0..=1")))
                    }
                    Some(_) if reference.is_none() => Err(invalid(
                        "payload.min_ssim",
                        "needs a reference to compare with".into(),
                    )),
                    _ => Ok(()),
                }
            }
            MediaPayload::Publish { input, name, .. } => {
                artifact("payload.input", input)?;
                file_name("payload.name", name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<MediaPayload, String> {
        let p: MediaPayload = serde_json::from_value(v).map_err(|e| e.to_string())?;
        p.check().map_err(|e| e.to_string())?;
        Ok(p)
    }

    const A: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn each_op_parses_and_bad_fields_are_named() {
        assert!(parse(json!({"op": "ingest", "source": "clip.mp4"})).is_ok());
        assert!(parse(json!({"op": "probe", "input": A, "segment_seconds": 2})).is_ok());
        assert!(
            parse(json!({"op": "transcode", "input": A, "start_ms": 0, "duration_ms": 2000, "codec": "h264", "height": 240, "crf": 30}))
                .is_ok()
        );
        assert!(parse(json!({"op": "concat", "inputs": [A, A]})).is_ok());
        assert!(parse(json!({"op": "check", "input": A, "reference": A, "min_ssim": 0.9})).is_ok());
        assert!(parse(json!({"op": "publish", "input": A, "name": "final.mp4"})).is_ok());

        for (bad, field) in [
            (
                json!({"op": "ingest", "source": "../etc/passwd"}),
                "payload.source",
            ),
            (
                json!({"op": "ingest", "source": ".hidden"}),
                "payload.source",
            ),
            (
                json!({"op": "probe", "input": "sha256:xyz"}),
                "payload.input",
            ),
            (
                json!({"op": "probe", "input": A, "segment_seconds": 0}),
                "payload.segment_seconds",
            ),
            (
                json!({"op": "transcode", "input": A, "start_ms": 0, "duration_ms": 0, "codec": "h264"}),
                "payload.duration_ms",
            ),
            (
                json!({"op": "transcode", "input": A, "start_ms": 0, "duration_ms": 5, "codec": "h264", "height": 241}),
                "payload.height",
            ),
            (
                json!({"op": "transcode", "input": A, "start_ms": 0, "duration_ms": 5, "codec": "mpeg4", "crf": 3}),
                "payload.crf",
            ),
            (json!({"op": "concat", "inputs": []}), "payload.inputs"),
            (
                json!({"op": "concat", "inputs": [A, "x"]}),
                "payload.inputs",
            ),
            (
                json!({"op": "check", "input": A, "min_ssim": 0.5}),
                "payload.min_ssim",
            ),
            (
                json!({"op": "publish", "input": A, "name": "a/b"}),
                "payload.name",
            ),
        ] {
            let e = parse(bad.clone()).expect_err(&bad.to_string());
            assert!(e.starts_with(field), "{bad} → {e}");
        }
    }

    #[test]
    fn unknown_ops_and_fields_are_refused_by_name() {
        let e = parse(json!({"op": "shell", "cmd": "rm -rf /"})).unwrap_err();
        assert!(e.contains("unknown variant `shell`"), "{e}");
        let e = parse(json!({"op": "ingest", "source": "a.mp4", "args": ["-i"]})).unwrap_err();
        assert!(e.contains("unknown field `args`"), "{e}");
    }
}
