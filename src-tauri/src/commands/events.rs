//! The bridge: the controller's events to the window, over a channel.
//!
//! The core already batches (one event per group commit, bots once a
//! second), so each `CoreEvent` is one message. A window that falls behind
//! gets `lagged` and resyncs; the task ends when the window drops the channel.

use oshal_core::controller::CoreEvent;
use tauri::State;
use tauri::ipc::Channel;
use tokio::sync::broadcast::error::RecvError;

use crate::Desktop;

#[tauri::command]
#[specta::specta]
pub fn events(desktop: State<'_, Desktop>, channel: Channel<CoreEvent>) {
    let mut rx = desktop.controller.subscribe();
    tauri::async_runtime::spawn(async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(RecvError::Lagged(missed)) => CoreEvent::Lagged { missed },
                Err(RecvError::Closed) => return,
            };
            if channel.send(event).is_err() {
                return;
            }
        }
    });
}
