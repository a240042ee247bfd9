//! The bridge: the controller's events to the window, over a channel.
//!
//! The core already batches (one event per group commit, bots once a
//! second, sent as what changed: `BotFeed`), so each `CoreEvent` is one
//! message. Locally the feed is the embedded controller's broadcast (a
//! window that falls behind gets `lagged` and resyncs); on a fleet it is
//! the controller's WebSocket, read here so the token never reaches the
//! page, and opened again (with backoff) when it drops, the window told
//! `lagged` meanwhile. A feed ends when the window drops the channel or
//! switches to another controller.

use futures::StreamExt;
use oshal_core::controller::CoreEvent;
use oshal_core::controller::feed::BotFeed;
use std::sync::atomic::Ordering;
use tauri::State;
use tauri::ipc::Channel;
use tokio::sync::broadcast::error::RecvError;

use super::CommandResult;
use crate::desktop::{Desktop, Target};

/// How soon a fleet's dropped feed is opened again, doubling to the most.
const RECONNECT_FIRST: std::time::Duration = std::time::Duration::from_millis(250);
const RECONNECT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

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
            let first = r.client.events().await?;
            tauri::async_runtime::spawn(async move {
                let mut feed = Some(Box::pin(first));
                let mut wait = RECONNECT_FIRST;
                while current() {
                    let Some(events) = feed.as_mut() else {
                        // Dropped (a restart, a proxy's idle timeout): the
                        // socket is opened again, and its first word of the
                        // bots is the whole list, which the window takes.
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(RECONNECT_MAX);
                        feed = r.client.events().await.ok().map(Box::pin);
                        continue;
                    };
                    match events.next().await {
                        Some(event) => {
                            wait = RECONNECT_FIRST;
                            if !current() || channel.send(event).is_err() {
                                return;
                            }
                        }
                        None => {
                            feed = None;
                            // What passed while it was down is read again.
                            if current() && channel.send(CoreEvent::Lagged { missed: 0 }).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    }
    Ok(())
}
