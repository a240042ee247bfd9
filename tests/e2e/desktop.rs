//! The desktop app in a real window: `oshal-desktop` under Xvfb, with no
//! network (a namespace of its own, loopback down) and no configuration (an
//! empty data directory), starts its embedded controller (SQLite in its data
//! directory, the local pool) and draws the control center. The screenshot must show the UI, not a blank
//! window, and the page's console (forwarded with `OSHAL_WEBVIEW_CONSOLE`)
//! must hold no error. The environment's `C` locale is kept on purpose: it is
//! what broke the page once (see `src-tauri/src/main.rs`).
//!
//! The second test drives the window over WebDriver (`tauri-driver` in front
//! of Debian's `WebKitWebDriver`, `ui/tests/window.mjs`): a ticket submitted
//! in the window succeeds, the window attaches to a real `oshal serve` (the
//! token goes to the OS keyring: `scripts/test` runs the tests in a D-Bus
//! session with an unlocked gnome-keyring) and switches back in one click.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Distinct colours in a PNG, via ImageMagick (`identify -format %k`).
fn colours(png: &std::path::Path) -> u64 {
    let out = Command::new("identify")
        .args(["-format", "%k"])
        .arg(png)
        .output()
        .expect("imagemagick's identify runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// A virtual display of our own: its name and the server.
fn xvfb() -> (String, Reaper) {
    let display = format!(":{}", 90 + std::process::id() % 800);
    let xvfb = Reaper(
        Command::new("Xvfb")
            .args([
                display.as_str(),
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts (scripts/test installs it)"),
    );
    std::thread::sleep(Duration::from_millis(500));
    (display, xvfb)
}

#[test]
fn the_desktop_app_opens_a_window_with_the_embedded_controller_offline_and_unconfigured() {
    let (display, xvfb) = xvfb();
    let data = tempfile::tempdir().unwrap();
    let console = data.path().join("console.log");
    // No network at all: a network namespace of its own, whose only
    // interface (loopback) is down. Local-only mode needs none. (A user
    // namespace too, so this needs no privilege where they are enabled.)
    let app = Reaper(
        Command::new("unshare")
            .args(["--map-root-user", "--net", "--"])
            .arg(oshal_e2e::desktop_bin())
            .env("DISPLAY", &display)
            .env("OSHAL_DATA_DIR", data.path())
            .env("NO_AT_BRIDGE", "1")
            .env("OSHAL_WEBVIEW_CONSOLE", "1")
            .env("LANG", "C.UTF-8")
            .env_remove("WAYLAND_DISPLAY")
            .stdout(std::fs::File::create(&console).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The embedded controller made its store; the window painted the UI.
    let shot = std::env::temp_dir().join(format!("oshal-desktop-{}.png", std::process::id()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
        let ok = Command::new("import")
            .args(["-display", &display, "-window", "root"])
            .arg(&shot)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            seen = colours(&shot);
            if seen > 16 && data.path().join("oshal.db").exists() {
                break;
            }
        }
    }
    assert!(
        data.path().join("oshal.db").exists(),
        "no store in {}",
        data.path().display()
    );
    assert!(
        seen > 16,
        "the window shows {seen} colours: blank ({})",
        shot.display()
    );
    let log = std::fs::read_to_string(&console).unwrap_or_default();
    assert!(
        !log.contains("CONSOLE JS ERROR"),
        "the page logged errors:\n{log}"
    );
    drop(app);
    drop(xvfb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_runs_a_ticket_attaches_to_a_fleet_and_switches_back() {
    let (display, xvfb) = xvfb();
    let fleet_dir = tempfile::tempdir().unwrap();
    let fleet = oshal_e2e::Server::start(fleet_dir.path(), &["--bots", "2"]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = oshal_e2e::free_port();
    let native_port = oshal_e2e::free_port();
    let driver = Reaper(
        Command::new("tauri-driver")
            .args(["--port", &port.to_string()])
            .args(["--native-port", &native_port.to_string()])
            .env("DISPLAY", &display)
            .env("OSHAL_DATA_DIR", data.path())
            .env("NO_AT_BRIDGE", "1")
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tauri-driver runs (scripts/test installs it)"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "tauri-driver never listened");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A tenant's viewer token, which the window attaches with second.
    let issued: serde_json::Value = fleet
        .post("/api/v1/tokens")
        .json(&serde_json::json!({"tenant": "acme", "role": "viewer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant_token = issued["token"].as_str().expect("a tenant token").to_owned();
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let shot = std::env::temp_dir().join(format!("oshal-window-{}.png", std::process::id()));
    let out = Command::new("node")
        .arg(ui.join("tests/window.mjs"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(oshal_e2e::desktop_bin())
        .arg(&fleet.url)
        .arg(&fleet.token)
        .arg(&tenant_token)
        .arg(&shot)
        .current_dir(&ui)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the window flow failed (screenshot {}):\n{}{}",
        shot.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(colours(&shot) > 16, "blank screenshot {}", shot.display());
    // Neither fleet token is anywhere in the app's files.
    for entry in oshal_e2e::files_under(data.path()) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        for token in [&fleet.token, &tenant_token] {
            assert!(
                !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
                "a token is in {}",
                entry.display()
            );
        }
    }
    drop(driver);
    drop(xvfb);
    // The list sits next to the embedded store; the token does not.
    let listed = std::fs::read_to_string(data.path().join("settings.json")).unwrap_or_default();
    assert!(
        listed.contains("prod") && listed.contains(&fleet.url),
        "{listed}"
    );
}
