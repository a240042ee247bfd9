//! The bridge: the controller's events to the window, over a channel.
//!
//! The core already batches (one event per group commit, bots once a
//! second, sent as what changed in parts of at most 500: `BotFeed`); each
//! `CoreEvent` is one message. Locally the feed is the embedded controller's broadcast (a
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
                    for event in bots.next(event) {
                        if !current() || channel.send(event).is_err() {
                            return;
                        }
                    }
                }
            });
        }
        Target::Fleet(r) => {
            let first = r.client.events().await?;
            tauri::async_runtime::spawn(async move {
                let client = &r.client;
                follow(
                    first,
                    || async move { client.events().await.ok() },
                    current,
                    |event| channel.send(event).is_ok(),
                )
                .await;
            });
        }
    }
    Ok(())
}

/// A fleet's feed from `first` on, opened again by `open` (with backoff)
/// whenever it drops (a restart, a proxy's idle timeout), the window told
/// `lagged` each time so it reads again what passed meanwhile; the feed's
/// first word of the bots is the whole list, which the window takes.
/// Every event goes to `send` until it refuses one (the window is gone)
/// or `current` says the window moved to another controller.
async fn follow<S, Fut>(
    first: S,
    open: impl Fn() -> Fut,
    current: impl Fn() -> bool,
    mut send: impl FnMut(CoreEvent) -> bool,
) where
    S: futures::Stream<Item = CoreEvent>,
    Fut: std::future::Future<Output = Option<S>>,
{
    let mut feed = Some(Box::pin(first));
    let mut wait = RECONNECT_FIRST;
    while current() {
        let Some(events) = feed.as_mut() else {
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(RECONNECT_MAX);
            feed = open().await.map(Box::pin);
            continue;
        };
        match events.next().await {
            Some(event) => {
                wait = RECONNECT_FIRST;
                if !current() || !send(event) {
                    return;
                }
            }
            None => {
                feed = None;
                if current() && !send(CoreEvent::Lagged { missed: 0 }) {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oshal_core::api::client::Client;
    use oshal_core::api::http::{self, ApiToken, Domains};
    use oshal_core::clock::SystemClock;
    use oshal_core::controller::{Controller, ControllerConfig, LocalPool};
    use oshal_core::store::sqlite::SqliteStore;
    use std::sync::Arc;
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    /// A controller with one bot and its API on a port of its own.
    async fn serve(
        dir: &std::path::Path,
        token: &ApiToken,
        shutdown: CancellationToken,
    ) -> (Controller, std::net::SocketAddr) {
        let store = Arc::new(SqliteStore::open(dir).await.unwrap());
        let controller = Controller::start(
            ControllerConfig::default(),
            store,
            LocalPool::builtin(1),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(http::serve(
            controller.clone(),
            None,
            Domains::default(),
            listener,
            None,
            oshal_core::tls::Edge::default(),
            token.clone(),
            None,
            shutdown,
        ));
        (controller, addr)
    }

    /// A link to `upstream` through `listener`, every connection of it
    /// cut when `cut` fires.
    fn link(
        listener: tokio::net::TcpListener,
        upstream: std::net::SocketAddr,
        cut: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut carried = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    () = cut.cancelled() => return,
                    accepted = listener.accept() => {
                        let Ok((mut down, _)) = accepted else { return };
                        carried.spawn(async move {
                            if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                            }
                        });
                    }
                }
            }
        })
    }

    async fn next(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<CoreEvent>,
        what: &str,
        want: impl Fn(&CoreEvent) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let event = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} in time"))
                .expect("the feed is followed");
            if want(&event) {
                return;
            }
        }
    }

    /// The link to a fleet is cut under an open feed and stays down a
    /// while: the window is told `lagged`, the feed is opened again on its
    /// own once the link is back, and its first word of the bots is the
    /// whole list again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cut_fleet_feed_is_opened_again_and_says_lagged_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let token = ApiToken::generate();
        let shutdown = CancellationToken::new();
        let (controller, upstream) = serve(dir.path(), &token, shutdown.clone()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = CancellationToken::new();
        let up = link(listener, upstream, cut.clone());
        let client = Client::new(&format!("http://{addr}"), token.expose()).unwrap();
        let first = client.events().await.unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let following = tokio::spawn(async move {
            let client = &client;
            follow(
                first,
                || async move { client.events().await.ok() },
                || true,
                |event| tx.send(event).is_ok(),
            )
            .await;
        });
        let whole = |e: &CoreEvent| matches!(e, CoreEvent::BotsUpdated { bots } if bots.len() == 1);
        next(&mut rx, "the first list of the bots", whole).await;
        cut.cancel();
        up.await.unwrap();
        next(&mut rx, "lagged", |e| {
            matches!(e, CoreEvent::Lagged { missed: 0 })
        })
        .await;
        // Down for a few tries of the backoff, then back on the same address.
        tokio::time::sleep(Duration::from_millis(800)).await;
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let back = CancellationToken::new();
        let up = link(listener, upstream, back.clone());
        next(&mut rx, "the bots whole again", whole).await;
        following.abort();
        back.cancel();
        up.await.unwrap();
        controller.shutdown().await;
        shutdown.cancel();
    }
}
