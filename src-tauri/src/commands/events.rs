//! The bridge: the controller's events to the window, over a channel.
//!
//! The core already batches (one event per group commit, bots once a
//! second, sent as what changed: `BotFeed`), so each `CoreEvent` is one
//! message. Locally the feed is the
//! embedded controller's broadcast (a window that falls behind gets `lagged`
//! and resyncs); on a fleet it is the controller's WebSocket, read here so
//! the token never reaches the page. A feed ends when the window drops the
//! channel or switches to another controller.

use futures::StreamExt;
use oshal_core::controller::CoreEvent;
use oshal_core::controller::feed::BotFeed;
use std::sync::atomic::Ordering;
use tauri::State;
use tauri::ipc::Channel;
use tokio::sync::broadcast::error::RecvError;

use super::CommandResult;
use crate::desktop::{Desktop, Target};

#[tauri::command]
#[specta::specta]
pub async fn events(desktop: State<'_, Desktop>, channel: Channel<CoreEvent>) -> CommandResult<()> {
    let generation = desktop.generation();
    let mine = generation.load(Ordering::SeqCst);
    let current = move || generation.load(Ordering::SeqCst) == mine;
    match desktop.target() {
        Target::Local(c) => {
            let mut rx = c.subscribe();
            let mut bots = BotFeed::default();
            tauri::async_runtime::spawn(async move {
                loop {
                    let event = match rx.recv().await {
                        Ok(e) => e,
                        Err(RecvError::Lagged(missed)) => CoreEvent::Lagged { missed },
                        Err(RecvError::Closed) => return,
                    };
                    let Some(event) = bots.next(event) else {
                        continue;
                    };
                    if !current() || channel.send(event).is_err() {
                        return;
                    }
                }
            });
        }
        Target::Fleet(r) => {
            let mut feed = Box::pin(r.client.events().await?);
            tauri::async_runtime::spawn(async move {
                while let Some(event) = feed.next().await {
                    if !current() || channel.send(event).is_err() {
                        return;
                    }
                }
                // The fleet went away: the window shows it and resyncs.
                if current() {
                    let _ = channel.send(CoreEvent::Lagged { missed: 0 });
                }
            });
        }
    }
    Ok(())
}
