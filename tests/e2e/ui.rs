//! The control center's web UI in a real browser (Chromium driven by
//! playwright-core, `ui/tests/browser.mjs`) against a real `oshal serve`
//! with its local bot pool: attach with the token, submit and watch a ticket
//! succeed, the lifecycle diagram drawn from the state machine's own table
//! (and filtering by it), the topology's bots and lanes,
//! the command palette, the architecture view, a ticket's journey, the
//! integrations and the security views; the other views' own tests, and
//! the walk-through (`ui/tests/tour.mjs`) on a pool that runs a real model,
//! and a fleet of thousands of bots (`ui/tests/scale.mjs`).
//! The first serves the UI built into the binary, the second one from
//! `--ui-dir`. `scripts/test` builds `ui/dist` and installs Chromium first.

use oshal_e2e::Server;
use std::path::Path;
use std::process::Command;

#[tokio::test]
async fn the_control_center_works_in_a_real_browser() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let dist = ui.join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "ui/dist is missing: run `npm ci && npm run build` in ui/ (scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    // A key left in the data directory, for the security view to find.
    let planted = dir.path().join("deploy.env");
    std::fs::write(&planted, "AWS_ACCESS_KEY_ID=AKIAZ7Q4LMNB2XKD3PQR\n").unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(
        &planted,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // No `--ui-dir`: the binary serves the UI it carries (a debug build
    // reads it from ui/dist, which a release build embeds).
    let server = Server::start(dir.path(), &["--bots", "2"]).unwrap();

    // The page itself is public and carries the CSP; the API behind it is not.
    let page = server
        .raw()
        .get(format!("{}/", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page.text().await.unwrap().contains("<div id=\"app\">"));
    let r = server
        .raw()
        .get(format!("{}/api/v1/tickets", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = server
        .raw()
        .get(format!("{}/api/v1/nope", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");

    // A grant for the integrations view to draw.
    let r = server
        .post("/api/v1/grants")
        .json(&serde_json::json!({"bot": "bot-01", "connector": "shopfront", "operations": ["get_order"], "scopes": ["orders:read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let shot = std::env::temp_dir().join("oshal-ui-topology.png");
    browse(&ui, "browser.mjs", &server, &[shot.to_str().unwrap()]);
}

/// The Workflow view: the shipped shapes started from the page, approvals
/// decided from its inbox, and a failed node retried from it; the video
/// pipeline doing real ffmpeg work on a clip ffmpeg made.
#[tokio::test]
async fn the_workflow_view_runs_the_shipped_shapes_in_a_real_browser() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi"])
        .args(["-i", "testsrc=duration=5:size=320x240:rate=25"])
        .args(["-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .expect("ffmpeg is installed (scripts/test installs it)");
    assert!(made.success());
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--bots", "2"]).unwrap();
    // The default tenant's space of the artifact root.
    let inbox = data.join("artifacts").join("default").join("inbox");
    browse(
        &ui,
        "workflows.mjs",
        &server,
        &[clip.to_str().unwrap(), inbox.to_str().unwrap()],
    );
    assert!(data.join("artifacts/default/published/final.mp4").is_file());
}

/// The Operations view: alerts posted as Alertmanager posts them open an
/// incident the page counts, opens on its timeline, acknowledges and
/// resolves.
#[tokio::test]
async fn the_operations_view_moves_an_incident_in_a_real_browser() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &["--bots", "1"]).unwrap();
    browse(&ui, "ops.mjs", &server, &[]);
}

/// Runs `ui/tests/<script>` in Node against `server`; fails with its output.
fn browse(ui: &Path, script: &str, server: &Server, extra: &[&str]) {
    // The lifecycle's moves as the state machine has them, for the page's
    // diagram to be held to: `from>to` pairs.
    let mut moves: Vec<String> = oshal_core::ticket::lifecycle()
        .iter()
        .map(|e| format!("{}>{}", e.from, e.to))
        .collect();
    moves.sort();
    moves.dedup();
    let out = Command::new("node")
        .env("OSHAL_LIFECYCLE", moves.join(","))
        .arg(ui.join("tests").join(script))
        .arg(&server.url)
        .arg(&server.token)
        .args(extra)
        .current_dir(ui)
        .output()
        .expect("node runs");
    // What the page said it did (shown with `--no-capture`).
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// From 150 bots the topology is one canvas, not an element per bot
/// (`scripts/bench-frames` measures why); clicking a bot on it still opens
/// that bot's tickets.
#[tokio::test]
async fn a_large_pool_is_drawn_on_a_canvas_that_still_clicks_through() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let dist = ui.join("dist").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--bots", "160", "--ui-dir", &dist]).unwrap();
    browse(&ui, "canvas.mjs", &server, &[]);
}

/// The walk-through, opened from the command palette, runs every step on a
/// live controller whose bots run a real model (so a ticket can be seen
/// running, and cancelled), moves by its keys, resumes after a reload, and
/// once cleared leaves nothing behind.
#[tokio::test]
async fn the_walk_through_runs_every_step_and_leaves_nothing_behind() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let llama = oshal_e2e::LlamaServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = [&["--bots", "2"][..], &llama.model_flags()].concat();
    let server = Server::start(&dir.path().join("data"), &args).unwrap();
    browse(&ui, "tour.mjs", &server, &[]);
}

/// The walk-through on a fleet's controller (PostgreSQL with row-level
/// security, Redis, a node): its isolation step's canary reads 0 rows
/// across two real tenants, and its ticket, cleared, is kept (a fleet's
/// history is append-only), tagged.
#[tokio::test]
async fn the_walk_through_shows_the_canary_reading_nothing_on_a_fleet() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let space = oshal_e2e::FleetSpace::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(&dir.path().join("data")).unwrap();
    let _node = space.node("n1", &["--bots", "1"]).unwrap();
    for tenant in ["acme", "globex"] {
        let r = server
            .put(&format!("/api/v1/tenants/{tenant}"))
            .json(&serde_json::json!({"budget_usd": 10.0}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{tenant}: {}", r.status());
    }
    browse(&ui, "tour.mjs", &server, &["fleet"]);
    drop(server);
    space.cleanup().await.unwrap();
}

/// A fleet drawn on a canvas at scale: `OSHAL_SCALE_NODES` nodes (20 by
/// default; 100 for the 10,000 bots the control center is built for) of
/// 100 bots each, real `oshal node` processes on the shared Redis, a bot a
/// connection (its client limit raised to fit for the test's while), with
/// a controller on PostgreSQL; the test runs alone (`.config/nextest.toml`).
/// On this 2-core machine 10,000 debug-built bots registered within a
/// minute once, and not within three beside other load, so CI runs 2,000
/// and `scripts/bench-frames 10000` measures 10,000. Every bot reaches the window, drawn on one canvas that
/// pans and zooms and, when the pixel ratio alone changes (the window on a
/// HiDPI screen), is sized again at the new ratio; the bot a real ticket ran on is found by name with its
/// lane's figures, the diagram is brought to it, and clicking it there
/// opens its tickets; a node's name finds its 100 bots.
#[tokio::test]
async fn a_fleet_of_thousands_of_bots_is_searched_shown_and_opened() {
    const BOTS_EACH: usize = 100;
    let nodes_n: usize = std::env::var("OSHAL_SCALE_NODES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let space = oshal_e2e::FleetSpace::new().await.unwrap();
    let client = redis::Client::open(space.redis.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, was): (String, String) = redis::cmd("CONFIG")
        .arg(&["GET", "maxclients"])
        .query_async(&mut conn)
        .await
        .unwrap();
    let room = nodes_n * (BOTS_EACH + 10) + 1_000;
    let _limit = (room > was.parse().unwrap()).then(|| {
        let mut c = client.get_connection().unwrap();
        redis::cmd("CONFIG")
            .arg(&["SET", "maxclients", &room.to_string()])
            .query::<()>(&mut c)
            .expect("Redis takes a client limit above 10,000 (its open files allow it)");
        ClientLimit {
            client: client.clone(),
            was,
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let server = space.serve(&dir.path().join("data")).unwrap();
    let each = BOTS_EACH.to_string();
    let nodes: Vec<_> = (1..=nodes_n)
        .map(|i| space.node(&format!("n{i}"), &["--bots", &each]).unwrap())
        .collect();
    browse(
        &ui,
        "scale.mjs",
        &server,
        &[&(nodes_n * BOTS_EACH).to_string()],
    );
    drop(nodes);
    drop(server);
    space.cleanup().await.unwrap();
}

/// Redis's client limit raised for a test's while: put back when the test
/// ends, however it ends (a panic too).
struct ClientLimit {
    client: redis::Client,
    was: String,
}

impl Drop for ClientLimit {
    fn drop(&mut self) {
        if let Ok(mut c) = self.client.get_connection() {
            let _ = redis::cmd("CONFIG")
                .arg(&["SET", "maxclients", &self.was])
                .query::<()>(&mut c);
        }
    }
}
