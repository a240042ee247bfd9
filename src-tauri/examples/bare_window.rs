//! The floor of a Tauri window's memory: the same tauri and WebKitGTK as
//! the app and its window (the same configuration: size, protocol, CSP),
//! showing a blank page served the way the app serves its own, and nothing
//! else (no controller, no commands, no plugins, Tauri's web view
//! defaults; with `OSHAL_BARE_LEAN` set, the app's own web view settings,
//! `oshal_desktop::lean_webview`). `scripts/bench-memory` holds the app's
//! idle memory against both.
//!
//! `cargo build --release -p oshal-desktop --example bare_window`

use std::borrow::Cow;
use tauri::utils::assets::{AssetKey, AssetsIter, CspHash};

/// The one page it has, whatever is asked for: an empty document.
const PAGE: &[u8] = b"<!doctype html><title>bare</title>";

struct Blank;

impl<R: tauri::Runtime> tauri::Assets<R> for Blank {
    fn get(&self, _: &AssetKey) -> Option<Cow<'_, [u8]>> {
        Some(Cow::Borrowed(PAGE))
    }

    fn iter(&self) -> Box<AssetsIter<'_>> {
        Box::new(std::iter::once((
            Cow::Borrowed("/index.html"),
            Cow::Borrowed(PAGE),
        )))
    }

    fn csp_hashes(&self, _: &AssetKey) -> Box<dyn Iterator<Item = CspHash<'_>> + '_> {
        Box::new(std::iter::empty())
    }
}

fn main() {
    let mut context: tauri::Context<tauri::Wry> = tauri::generate_context!();
    // The app's window as configured; its page a blank one.
    context.set_assets(Box::new(Blank));
    tauri::Builder::default()
        .setup(|app| {
            if std::env::var_os("OSHAL_BARE_LEAN").is_some() {
                oshal_desktop::lean_webview(app)?;
            }
            Ok(())
        })
        .run(context)
        .expect("a bare window runs");
}
