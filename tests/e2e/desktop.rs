//! The desktop app in a real window: `oshal-desktop` under Xvfb starts its
//! embedded controller (SQLite in its data directory, the local pool) and
//! draws the control center. The screenshot must show the UI, not a blank
//! window, and the page's console (forwarded with `OSHAL_WEBVIEW_CONSOLE`)
//! must hold no error. The environment's `C` locale is kept on purpose: it is
//! what broke the page once (see `src-tauri/src/main.rs`).

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

#[test]
fn the_desktop_app_opens_a_window_with_the_embedded_controller() {
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
    let data = tempfile::tempdir().unwrap();
    let console = data.path().join("console.log");
    let app = Reaper(
        Command::new(oshal_e2e::desktop_bin())
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
