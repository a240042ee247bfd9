//! The shipped shapes (`assets/workflows/`), run end to end on the bots:
//! the video pipeline on a clip ffmpeg makes, with real ffmpeg output
//! checked by ffprobe, the support-ticket shape with its approvals, and
//! the build pipeline on C sources ([`build`]).

mod build;

use std::path::Path;

use serde_json::{Value, json};

use super::testkit::until;
use super::*;
use crate::bot::artifacts::{ArtifactStore, Space};
use crate::controller::LocalPool;
use crate::ticket::TenantId;
use oshal_workflow::history::{NodePhase, RunState};

const VIDEO: &str = include_str!("../../../../../assets/workflows/video.yaml");
const SUPPORT: &str = include_str!("../../../../../assets/workflows/support-ticket.yaml");

/// A local controller whose bots have an artifact root; the default
/// tenant's space in it.
async fn open(dir: &Path) -> (Controller, Workflows, Space) {
    let media = ArtifactStore::new(dir.join("artifacts"));
    let pool = LocalPool {
        artifacts: Some(media.clone()),
        ..LocalPool::builtin(2)
    };
    let (_, controller, workflows) = super::testkit::open(dir, pool).await;
    (
        controller,
        workflows,
        media.space(&TenantId::default_tenant()),
    )
}

fn node<'a>(v: &'a RunView, name: &str) -> &'a NodeView {
    v.nodes.iter().find(|n| n.outline.name == name).unwrap()
}

fn waiting_on(v: &RunView, name: &str) -> bool {
    node(v, name)
        .approval
        .as_ref()
        .is_some_and(|a| a.decided_by.is_none())
        && node(v, name).phase == NodePhase::Running
}

async fn approve(workflows: &Workflows, id: &str, name: &str, input: Value) {
    workflows
        .decide(
            id,
            None,
            Decision {
                node: name.into(),
                approved: true,
                input,
                comment: String::new(),
            },
            "tenant",
            "tenant default",
        )
        .await
        .unwrap();
}

fn ffprobe(path: &Path) -> Value {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height:format=duration",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed (scripts/test installs ffmpeg)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `inbox/clip.mp4`: ffmpeg's test pattern `source` (a lavfi source), in h264.
fn clip(media: &Space, source: &str) {
    std::fs::create_dir_all(media.inbox()).unwrap();
    let made = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            source,
        ])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(media.inbox().join("clip.mp4"))
        .status()
        .expect("ffmpeg is installed (scripts/test installs it)");
    assert!(made.success());
}

/// A `media` ticket of the default tenant, once it has ended.
async fn ended(controller: &Controller, payload: Value) -> crate::store::TicketView {
    ended_of(controller, "media", payload).await
}

/// A ticket of `kind` of the default tenant, once it has ended.
async fn ended_of(controller: &Controller, kind: &str, payload: Value) -> crate::store::TicketView {
    let id = controller
        .submit(crate::ticket::NewTicket {
            kind: kind.into(),
            payload,
            max_attempts: Some(1),
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    for _ in 0..400 {
        let v = controller.ticket(id).await.unwrap();
        if super::tickets::ended(v.state, v.attempts, v.max_attempts) {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("ticket {id} never ended");
}

fn inputs(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn the_video_pipeline_transcodes_a_real_clip_and_publishes_it_after_review() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, workflows, media) = open(dir.path()).await;
    // A 5 s test pattern at 320×240, made by ffmpeg itself.
    clip(&media, "testsrc=duration=5:size=320x240:rate=25");

    let start = || NewRun {
        spec: json!(VIDEO),
        inputs: inputs(json!({"source": "clip.mp4", "name": "final.mp4", "segment_seconds": 2})),
        tenant: None,
        definition: None,
        version: None,
        dry_run: false,
    };
    let v = workflows.start_run(start(), "operator").await.unwrap();
    let id = v.summary.id.clone();
    let at_review = until(&workflows, &id, "the review", |v| {
        waiting_on(v, "review") || v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(at_review.summary.state, RunState::Running, "{at_review:#?}");
    let transcode = node(&at_review, "transcode");
    assert_eq!(transcode.units.len(), 3, "5 s in segments of 2 s");
    assert!(
        transcode
            .units
            .iter()
            .all(|u| u.phase == NodePhase::Succeeded && !u.memoized)
    );
    let quality = node(&at_review, "quality").units[0].output.clone().unwrap();
    assert_eq!(quality["passed"], json!(true));
    assert!(quality["ssim"].as_f64().unwrap() >= 0.5, "{quality}");
    assert_eq!(
        (quality["height"].as_u64(), quality["codec"].as_str()),
        (Some(240), Some("h264"))
    );
    // Each media step told its progress; the history kept the heartbeats.
    let history = workflows.history(&id, None).await.unwrap();
    let beats = history
        .iter()
        .filter(|e| e.event == "node_heartbeat")
        .count();
    assert!(
        beats >= 6,
        "one at least per media step before the review: {beats}"
    );
    assert!(
        !media.published().join("final.mp4").exists(),
        "nothing is published before the review"
    );

    approve(&workflows, &id, "review", json!({"note": "looks right"})).await;
    let done = until(&workflows, &id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{done:#?}");
    let published = media.published().join("final.mp4");
    let probe = ffprobe(&published);
    let stream = &probe["streams"][0];
    assert_eq!(
        (stream["codec_name"].as_str(), stream["height"].as_u64()),
        (Some("h264"), Some(240))
    );
    let seconds: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (seconds - 5.0).abs() < 0.2,
        "the stitched segments last the clip's 5 s: {seconds}"
    );
    let stitched = node(&done, "stitch").units[0].output.clone().unwrap();
    assert_eq!(
        done.nodes.last().unwrap().units[0].output.as_ref().unwrap()["artifact"],
        stitched["artifact"],
        "what was reviewed is what was published"
    );
    assert_eq!(done.summary.cost_nusd, 0, "media work calls no model");

    // The same clip again: the transcodes and the stitch come from the memo.
    let again = workflows.start_run(start(), "operator").await.unwrap();
    let second = until(&workflows, &again.summary.id, "the review", |v| {
        waiting_on(v, "review") || v.summary.state != RunState::Running
    })
    .await;
    let t = node(&second, "transcode");
    assert!(
        t.units.iter().all(|u| u.memoized && u.tickets.is_empty()),
        "{t:#?}"
    );
    assert!(node(&second, "stitch").units[0].memoized);
    assert_eq!(node(&second, "stitch").units[0].output, Some(stitched));
    workflows.shutdown();
    controller.shutdown().await;
}

/// A dry run of the video pipeline does the media work into the artifact
/// store and publishes nothing: the publish step answers where it would
/// have written, and no output of it enters the memo.
#[tokio::test]
async fn a_dry_run_of_the_video_pipeline_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, workflows, media) = open(dir.path()).await;
    clip(&media, "testsrc=duration=2:size=160x120:rate=10");
    let v = workflows
        .start_run(
            NewRun {
                spec: json!(VIDEO),
                inputs: inputs(json!({"source": "clip.mp4", "height": 120})),
                tenant: None,
                definition: None,
                version: None,
                dry_run: true,
            },
            "operator",
        )
        .await
        .unwrap();
    assert!(v.summary.dry_run);
    let id = v.summary.id.clone();
    until(&workflows, &id, "the review", |v| waiting_on(v, "review")).await;
    approve(&workflows, &id, "review", json!({})).await;
    let done = until(&workflows, &id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{done:#?}");
    let publish = node(&done, "publish").units[0].output.clone().unwrap();
    assert_eq!(
        publish["dry_run"]["would_publish"], "published/final.mp4",
        "{publish}"
    );
    assert!(
        !media.published().join("final.mp4").exists(),
        "nothing was published"
    );
    workflows.shutdown();
    controller.shutdown().await;
}

#[tokio::test]
async fn media_steps_refuse_what_is_not_in_the_store_and_heartbeats_only_where_work_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, workflows, media) = open(dir.path()).await;
    // A heartbeat timeout on work that reports no progress is refused at its path.
    let spec = r#"
api_version: oshal.dev/workflow/v1
name: beats
nodes:
  - name: a
    timeouts: { start_to_close: 1m, heartbeat: 5s }
    task: { kind: chat, payload: { prompt: hi } }
"#;
    let e = workflows
        .start_run(
            NewRun {
                spec: json!(spec),
                inputs: Default::default(),
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "operator",
        )
        .await
        .unwrap_err();
    let WorkflowError::Spec(issues) = e else {
        panic!("{e}")
    };
    assert_eq!(
        issues[0].path, "$.nodes[0].timeouts.heartbeat",
        "{issues:?}"
    );
    // A file that is not in the inbox fails the step, naming it, and the run.
    let v = workflows
        .start_run(
            NewRun {
                spec: json!(VIDEO),
                inputs: inputs(json!({"source": "missing.mp4"})),
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "operator",
        )
        .await
        .unwrap();
    let done = until(&workflows, &v.summary.id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Failed);
    let ingest = &node(&done, "ingest").units[0];
    assert!(
        ingest
            .error
            .as_deref()
            .unwrap()
            .contains("no file \"missing.mp4\""),
        "{ingest:#?}"
    );
    assert!(node(&done, "transcode").units.is_empty());

    // Another tenant's space holds nothing of the default tenant's.
    clip(&media, "testsrc=duration=1:size=64x48:rate=5");
    let theirs = controller
        .submit(crate::ticket::NewTicket {
            kind: "media".into(),
            payload: json!({"op": "ingest", "source": "clip.mp4"}),
            tenant: Some("acme".into()),
            max_attempts: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut view = controller.ticket(theirs.id).await.unwrap();
    for _ in 0..400 {
        if view.state.is_terminal() || view.state == crate::ticket::TicketState::Failed {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        view = controller.ticket(theirs.id).await.unwrap();
    }
    assert!(
        view.error
            .as_deref()
            .is_some_and(|e| e.contains("no file \"clip.mp4\"")),
        "acme cannot ingest the default tenant's clip: {view:?}"
    );

    // A playlist ingested as an artifact is not followed: ffprobe reads
    // inputs only as plain media containers.
    // (It names a real file by its absolute path: followed, it would probe fine.)
    let target = media.inbox().join("clip.mp4");
    std::fs::write(
        media.inbox().join("list.m3u8"),
        format!(
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{}\n#EXT-X-ENDLIST\n",
            target.display()
        ),
    )
    .unwrap();
    let ingested = ended(&controller, json!({"op": "ingest", "source": "list.m3u8"})).await;
    let artifact =
        serde_json::from_str::<Value>(ingested.result.as_ref().unwrap()["text"].as_str().unwrap())
            .unwrap()["artifact"]
            .clone();
    let probed = ended(&controller, json!({"op": "probe", "input": artifact})).await;
    assert!(
        probed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("ffprobe")),
        "a playlist is refused, not followed: {probed:?}"
    );
    workflows.shutdown();
    controller.shutdown().await;
}

#[tokio::test]
async fn the_support_ticket_shape_is_assigned_resolved_and_a_breach_is_written_up() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, workflows, _media) = open(dir.path()).await;
    let start = || NewRun {
        spec: json!(SUPPORT),
        inputs: inputs(json!({"subject": "cannot log in", "body": "the code never arrives"})),
        tenant: None,
        definition: None,
        version: None,
        dry_run: false,
    };
    let v = workflows.start_run(start(), "operator").await.unwrap();
    let id = v.summary.id.clone();
    until(&workflows, &id, "assignment", |v| waiting_on(v, "assign")).await;
    approve(
        &workflows,
        &id,
        "assign",
        json!({"assignee": "sam", "priority": "high"}),
    )
    .await;
    until(&workflows, &id, "resolution", |v| waiting_on(v, "resolve")).await;
    approve(
        &workflows,
        &id,
        "resolve",
        json!({"resolution": "resolved"}),
    )
    .await;
    let done = until(&workflows, &id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{done:#?}");
    assert_eq!(node(&done, "close").phase, NodePhase::Succeeded);
    assert_ne!(
        node(&done, "breach").phase,
        NodePhase::Succeeded,
        "no SLA was breached"
    );

    // Assignment refused: the breach note is written and the run still ends well.
    let v = workflows.start_run(start(), "operator").await.unwrap();
    let id = v.summary.id.clone();
    until(&workflows, &id, "assignment", |v| waiting_on(v, "assign")).await;
    workflows
        .decide(
            &id,
            None,
            Decision {
                node: "assign".into(),
                approved: false,
                input: Value::Null,
                comment: "nobody free".into(),
            },
            "tenant",
            "tenant default",
        )
        .await
        .unwrap();
    let done = until(&workflows, &id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(
        node(&done, "breach").phase,
        NodePhase::Succeeded,
        "{done:#?}"
    );
    assert_eq!(node(&done, "close").phase, NodePhase::Omitted);
    assert_eq!(
        done.summary.state,
        RunState::Succeeded,
        "the breach was handled: {done:#?}"
    );
    workflows.shutdown();
    controller.shutdown().await;
}
