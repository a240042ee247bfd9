//! A slow link: a TCP relay in front of a real server that holds each
//! burst of bytes a client sends for a delay before passing it on, the way
//! a latency fault injector (toxiproxy's `latency`) does. Put in front of a
//! model server, every call takes the delay longer: a slow model, as the
//! bots calling it see one. The delay can change while it runs.
//!
//! It can also hold only the connections already open
//! ([`SlowLink::slow_open_ones`]): a client's pooled connections pinned
//! to a sick path (a backend a load balancer drains, a half-broken NAT
//! entry) while a new connection goes through at once. A client that
//! keeps its pool stays slow; one that starts afresh does not.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct SlowLink {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    delay_ms: Arc<AtomicU64>,
    pinned: Arc<Pinned>,
    task: tokio::task::JoinHandle<()>,
}

/// Connections numbered below `below` are held `delay_ms`; `accepted`
/// numbers them.
#[derive(Default)]
struct Pinned {
    accepted: AtomicU64,
    below: AtomicU64,
    delay_ms: AtomicU64,
}

impl SlowLink {
    /// A relay to `upstream` (`host:port`), passing bytes on at once until
    /// [`SlowLink::set_delay`] says otherwise.
    pub async fn start(upstream: &str) -> Result<SlowLink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let delay_ms = Arc::new(AtomicU64::new(0));
        let pinned = Arc::new(Pinned::default());
        let upstream = upstream.to_owned();
        let (delay, pins) = (delay_ms.clone(), pinned.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, delay, pins) = (upstream.clone(), delay.clone(), pins.clone());
                let id = pins.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        let held = move || {
                            let pinned = if id < pins.below.load(Ordering::SeqCst) {
                                pins.delay_ms.load(Ordering::SeqCst)
                            } else {
                                0
                            };
                            delay.load(Ordering::SeqCst).max(pinned)
                        };
                        relay(client, server, held).await;
                    }
                });
            }
        });
        Ok(SlowLink {
            url,
            delay_ms,
            pinned,
            task,
        })
    }

    /// Holds every connection open now `delay` (on top of
    /// [`Self::set_delay`]), and none opened from now on.
    pub fn slow_open_ones(&self, delay: Duration) {
        self.pinned
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
        self.pinned.below.store(
            self.pinned.accepted.load(Ordering::SeqCst),
            Ordering::SeqCst,
        );
    }

    /// How many connections it has taken so far.
    pub fn accepted(&self) -> u64 {
        self.pinned.accepted.load(Ordering::SeqCst)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, delay: impl Fn() -> u64) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut burst = buf[..n].to_vec();
            let ms = delay();
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                // What arrived meanwhile belongs to the same burst.
                while let Ok(more) = client_read.try_read(&mut buf) {
                    if more == 0 {
                        break;
                    }
                    burst.extend_from_slice(&buf[..more]);
                }
            }
            if server_write.write_all(&burst).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}
