//! A `media` ticket: one step of media work (ingest, probe, transcode,
//! concat, check, publish) done by `ffmpeg`/`ffprobe` on artifacts kept by
//! content hash in the ticket's tenant's space of the bot's
//! [`ArtifactStore`](super::artifacts::ArtifactStore).
//!
//! The tools are run directly (no shell), with an empty environment but
//! `PATH`, and with arguments built from the payload's typed fields alone
//! ([`ffmpeg`]); a payload names artifacts by hash and files by plain
//! names, so nothing outside the artifact root can be read or written. An
//! output is written to `tmp/` and moved into `artifacts/` under its hash
//! only once whole, so a step killed halfway leaves no artifact. While a
//! step runs, the bot reports
//! its progress (`BotReport::Progress`), which a workflow keeps as a
//! heartbeat. The result is JSON; no model is called, so a step costs
//! nothing in the ledger.

pub mod ffmpeg;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::artifacts::{Failure, Space, Stop, make_dir};
use super::{BotContext, BotReport, Outcome};
use crate::cost::Usage;
use crate::ticket::{MediaPayload, TicketId};

/// The longest one tool runs before it is killed.
const MAX_RUN: Duration = Duration::from_secs(30 * 60);
/// The fewest milliseconds between two progress reports of one step.
const REPORT_EVERY_MS: i64 = 500;
/// The most segments a probe plans (wider segments past it): what one
/// run's history and one concat hold with room to spare.
const MAX_SEGMENTS: usize = 400;
/// The most of a probe's stdout read.
const MAX_PROBE_OUTPUT: usize = 64 * 1024;

/// Runs one `media` ticket.
pub(super) async fn run(
    cx: &BotContext,
    payload: &MediaPayload,
    (tenant, ticket, attempt): (&crate::ticket::TenantId, TicketId, u32),
    cancel: &CancellationToken,
) -> Outcome {
    let Some(media) = cx.spec.artifacts.clone() else {
        return Outcome::Failed {
            error: format!(
                "bot {} has no artifact root; media tickets run where one is configured (oshal node --artifact-root)",
                cx.spec.id
            ),
            retryable: false,
        };
    };
    let store = media.space(tenant);
    let mut step = Step {
        cx,
        store: &store,
        ticket,
        attempt,
        cancel,
        last_report_ms: None,
        scratch: Vec::new(),
    };
    step.report(Some(0));
    let answer = step.run(payload).await;
    match answer {
        Ok(value) => Outcome::Succeeded {
            text: value.to_string(),
            usage: Usage::default(),
            reported_model: None,
            cut: false,
        },
        Err(Stop::Cancelled) => Outcome::Cancelled,
        Err(Stop::Failed(f)) => Outcome::Failed {
            error: format!("media {}: {}", payload.op(), f.error),
            retryable: f.retryable,
        },
    }
}

/// One step in progress.
struct Step<'a> {
    cx: &'a BotContext,
    store: &'a Space,
    ticket: TicketId,
    attempt: u32,
    cancel: &'a CancellationToken,
    last_report_ms: Option<i64>,
    /// Files it made in `tmp/`.
    scratch: Vec<PathBuf>,
}

/// Whatever a step left in `tmp/` (it was stopped midway: a cancel, a
/// timeout, the bot shutting down) goes with it; a kept output was moved
/// out already.
impl Drop for Step<'_> {
    fn drop(&mut self) {
        for path in &self.scratch {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Step<'_> {
    /// A fresh file in `tmp/`, removed when the step ends if still there.
    fn scratch(&mut self, ext: &str) -> PathBuf {
        let path = self.store.scratch(self.ticket, self.attempt, ext);
        self.scratch.push(path.clone());
        path
    }

    /// Tells the controller how far the step is (at most every
    /// [`REPORT_EVERY_MS`]; 100 always). A full report channel drops it:
    /// progress is advice, the next one says more.
    fn report(&mut self, progress: Option<u8>) {
        let now = self.cx.clock.now_ms();
        let recent = self
            .last_report_ms
            .is_some_and(|last| now - last < REPORT_EVERY_MS);
        if progress != Some(100) && recent {
            return;
        }
        self.last_report_ms = Some(now);
        let _ = self.cx.reports.try_send(BotReport::Progress {
            bot: self.cx.spec.id.clone(),
            ticket: self.ticket,
            attempt: self.attempt,
            progress,
            at_ms: now,
        });
    }

    async fn run(&mut self, payload: &MediaPayload) -> Result<Value, Stop> {
        match payload {
            MediaPayload::Ingest { source } => {
                let tmp = self.scratch("in");
                make_dir(tmp.parent().expect("tmp/ has a parent")).await?;
                let (artifact, bytes) = self.store.take_in(source, &tmp).await?;
                Ok(json!({ "artifact": artifact, "bytes": bytes }))
            }
            MediaPayload::Probe {
                input,
                segment_seconds,
            } => {
                let path = self.store.existing(input).await?;
                let probe = self.probe(&path).await?;
                let segments = ffmpeg::segments(probe.duration_ms, *segment_seconds, MAX_SEGMENTS);
                let mut v = serde_json::to_value(&probe).unwrap_or(Value::Null);
                v["segments"] = serde_json::to_value(segments).unwrap_or(Value::Null);
                Ok(v)
            }
            MediaPayload::Transcode {
                input,
                start_ms,
                duration_ms,
                codec,
                height,
                crf,
            } => {
                let path = self.store.existing(input).await?;
                let out = self.scratch("mkv");
                make_dir(out.parent().expect("tmp/ has a parent")).await?;
                let args = ffmpeg::transcode_args(
                    &path,
                    (*start_ms, *duration_ms),
                    *codec,
                    *height,
                    *crf,
                    &out,
                );
                self.tool("ffmpeg", args, Some(*duration_ms), &out).await?;
                self.kept(&out).await
            }
            MediaPayload::Concat { inputs } => {
                let mut paths = Vec::with_capacity(inputs.len());
                for i in inputs {
                    paths.push(self.store.existing(i).await?);
                }
                let list = self.scratch("txt");
                make_dir(list.parent().expect("tmp/ has a parent")).await?;
                let text =
                    ffmpeg::concat_list(&paths.iter().map(PathBuf::as_path).collect::<Vec<_>>());
                tokio::fs::write(&list, text)
                    .await
                    .map_err(|e| Failure::retry(format!("cannot write the list: {e}")))?;
                let out = self.scratch("mp4");
                let result = self
                    .tool("ffmpeg", ffmpeg::concat_args(&list, &out), None, &out)
                    .await;
                let _ = tokio::fs::remove_file(&list).await;
                result?;
                self.kept(&out).await
            }
            MediaPayload::Check {
                input,
                reference,
                duration_ms,
                tolerance_ms,
                min_ssim,
            } => {
                let path = self.store.existing(input).await?;
                let probe = self.probe(&path).await?;
                if let Some(want) = duration_ms {
                    let tolerance = tolerance_ms.unwrap_or(100);
                    if probe.duration_ms.abs_diff(*want) > tolerance {
                        return Err(Failure::fail(format!(
                            "quality check failed: the duration is {} ms; {want} ± {tolerance} ms was expected",
                            probe.duration_ms
                        ))
                        .into());
                    }
                }
                let mut ssim = None;
                if let Some(reference) = reference {
                    let against = self.store.existing(reference).await?;
                    let stderr = self
                        .tool(
                            "ffmpeg",
                            ffmpeg::ssim_args(&path, &against),
                            Some(probe.duration_ms),
                            Path::new(""),
                        )
                        .await?;
                    let value = ffmpeg::parse_ssim(&stderr).ok_or_else(|| {
                        Failure::fail("ffmpeg printed no SSIM summary".to_owned())
                    })?;
                    let min = min_ssim.unwrap_or(0.9);
                    if value < min {
                        return Err(Failure::fail(format!(
                            "quality check failed: SSIM {value:.4} against the reference is under {min}"
                        ))
                        .into());
                    }
                    ssim = Some(value);
                }
                Ok(json!({
                    "passed": true,
                    "duration_ms": probe.duration_ms,
                    "ssim": ssim,
                    "width": probe.width,
                    "height": probe.height,
                    "codec": probe.codec,
                }))
            }
            MediaPayload::Publish {
                input,
                name,
                dry_run: true,
            } => {
                self.store.existing(input).await?;
                let would = format!("published/{name}");
                Ok(
                    json!({ "artifact": input, "path": null, "dry_run": { "would_publish": would } }),
                )
            }
            MediaPayload::Publish { input, name, .. } => {
                let path = self.store.existing(input).await?;
                let dir = self.store.published();
                make_dir(&dir).await?;
                let tmp = dir.join(format!(".{name}.{}.part", self.ticket));
                self.scratch.push(tmp.clone());
                tokio::fs::copy(&path, &tmp)
                    .await
                    .map_err(|e| Failure::retry(format!("cannot copy into published/: {e}")))?;
                tokio::fs::rename(&tmp, dir.join(name))
                    .await
                    .map_err(|e| Failure::retry(format!("cannot publish {name:?}: {e}")))?;
                Ok(json!({ "artifact": input, "path": format!("published/{name}") }))
            }
        }
    }

    /// Keeps `out` as an artifact: `{"artifact", "bytes", "duration_ms"}`.
    async fn kept(&mut self, out: &Path) -> Result<Value, Stop> {
        let probe = self.probe(out).await;
        let (artifact, bytes) = self.store.keep(out).await?;
        let probe = probe?;
        self.report(Some(100));
        Ok(json!({ "artifact": artifact, "bytes": bytes, "duration_ms": probe.duration_ms }))
    }

    async fn probe(&mut self, path: &Path) -> Result<ffmpeg::Probe, Stop> {
        let mut running = super::artifacts::spawn("ffprobe", "ffmpeg", ffmpeg::probe_args(path))?;
        let mut stdout = running.child.stdout.take().expect("piped");
        let mut out = Vec::new();
        let read = async {
            (&mut stdout)
                .take(MAX_PROBE_OUTPUT as u64)
                .read_to_end(&mut out)
                .await
                .map_err(|e| Failure::retry(format!("cannot read ffprobe: {e}")))?;
            running.finished("ffprobe").await
        };
        let stderr = tokio::select! {
            _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
            r = tokio::time::timeout(MAX_RUN, read) => r.map_err(|_| Failure::fail(timeout("ffprobe")))??,
        };
        ffmpeg::parse_probe(&out)
            .map_err(|e| Failure::fail(format!("ffprobe: {e} {}", stderr.trim())).into())
    }

    /// Runs `program` to its end, reporting progress (against `total_ms`,
    /// if known) from its `-progress` lines; answers its stderr. `out` is
    /// removed if the run does not succeed.
    async fn tool(
        &mut self,
        program: &str,
        args: Vec<OsString>,
        total_ms: Option<u64>,
        out: &Path,
    ) -> Result<String, Stop> {
        let result = self.tool_inner(program, args, total_ms).await;
        if result.is_err() && !out.as_os_str().is_empty() {
            let _ = tokio::fs::remove_file(out).await;
        }
        result
    }

    async fn tool_inner(
        &mut self,
        program: &str,
        args: Vec<OsString>,
        total_ms: Option<u64>,
    ) -> Result<String, Stop> {
        let mut running = super::artifacts::spawn(program, "ffmpeg", args)?;
        let mut lines = BufReader::new(running.child.stdout.take().expect("piped")).lines();
        let deadline = tokio::time::Instant::now() + MAX_RUN;
        let mut figure = None;
        loop {
            let line = tokio::select! {
                _ = self.cancel.cancelled() => return Err(Stop::Cancelled),
                _ = tokio::time::sleep_until(deadline) => return Err(Failure::fail(timeout(program)).into()),
                line = lines.next_line() => line,
            };
            match line {
                // A block of `-progress` ended: a heartbeat, with how far
                // the run is if the total is known.
                Ok(Some(line)) if line.starts_with("progress=") => self.report(figure),
                Ok(Some(line)) => {
                    if let Some(p) = total_ms.and_then(|t| ffmpeg::progress(&line, t)) {
                        figure = Some(p);
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(Failure::retry(format!("cannot read {program}: {e}")).into()),
            }
        }
        tokio::select! {
            _ = self.cancel.cancelled() => Err(Stop::Cancelled),
            r = tokio::time::timeout_at(deadline, running.finished(program)) => {
                Ok(r.map_err(|_| Failure::fail(timeout(program)))??)
            }
        }
    }
}

fn timeout(program: &str) -> String {
    format!(
        "{program} ran longer than {} s and was stopped",
        MAX_RUN.as_secs()
    )
}
