//! The floor of a Tauri window's memory: the same tauri and WebKitGTK as
//! the app, one window, a blank page, nothing else (no controller, no
//! commands, no plugins, Tauri's defaults). `scripts/bench-memory` holds
//! the app's idle memory against this one's.
//!
//! `cargo build --release -p oshal-desktop --example bare_window`

fn main() {
    let mut context: tauri::Context<tauri::Wry> = tauri::generate_context!();
    // The app's own window (and page) are the app's: this one opens its own.
    context.config_mut().app.windows.clear();
    tauri::Builder::default()
        .setup(|app| {
            let blank = tauri::WebviewUrl::External("about:blank".parse()?);
            tauri::WebviewWindowBuilder::new(app, "bare", blank)
                .title("bare")
                .inner_size(1280.0, 800.0)
                .build()?;
            Ok(())
        })
        .run(context)
        .expect("a bare window runs");
}
