// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    #[cfg(target_os = "linux")]
    give_webkit_a_language();
    oshal_desktop::run();
}

/// WebKitGTK passes the POSIX locale through as `navigator.language`; under
/// the `C` locale (containers, CI, minimal installs) that is "C", which
/// `Intl` rejects with a RangeError, and a chart library that formats numbers
/// at import time then stops the whole page. The `C` locale names no
/// language, so the app says English for it (by re-executing itself with
/// `LANG=en_US.UTF-8`, which needs no unsafe environment mutation), and
/// leaves every real locale alone.
#[cfg(target_os = "linux")]
fn give_webkit_a_language() {
    use std::os::unix::process::CommandExt;
    let effective = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    let languageless = effective.as_deref().is_none_or(|v| {
        let name = v.split('.').next().unwrap_or(v);
        name == "C" || name == "POSIX"
    });
    if languageless && let Ok(exe) = std::env::current_exe() {
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .env("LANG", "en_US.UTF-8")
            .exec();
        eprintln!("oshal-desktop: could not set a language for the web view ({err}); going on");
    }
}
