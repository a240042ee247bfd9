//! A slow link: a TCP relay in front of a real server that holds each
//! burst of bytes a client sends for a delay before passing it on, the way
//! a latency fault injector (toxiproxy's `latency`) does. Put in front of a
//! model server, every call takes the delay longer: a slow model, as the
//! bots calling it see one. The delay can change while it runs.

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
    task: tokio::task::JoinHandle<()>,
}

impl SlowLink {
    /// A relay to `upstream` (`host:port`), passing bytes on at once until
    /// [`SlowLink::set_delay`] says otherwise.
    pub async fn start(upstream: &str) -> Result<SlowLink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let delay_ms = Arc::new(AtomicU64::new(0));
        let upstream = upstream.to_owned();
        let delay = delay_ms.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, delay) = (upstream.clone(), delay.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(&upstream).await {
                        relay(client, server, delay).await;
                    }
                });
            }
        });
        Ok(SlowLink {
            url,
            delay_ms,
            task,
        })
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

async fn relay(client: TcpStream, server: TcpStream, delay: Arc<AtomicU64>) {
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
            let ms = delay.load(Ordering::SeqCst);
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
