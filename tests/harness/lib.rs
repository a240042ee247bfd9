//! The end-to-end harness: real `oshal` processes on temp-dir data, a real
//! HTTP client, and a real model server when a test needs one.
//!
//! The `oshal` binary is found next to the test executable (`target/<profile>/`),
//! or at `$OSHAL_BIN`. `cargo test --workspace` and nextest build it, because
//! `oshal-core` has integration tests of its own CLI.

#![allow(clippy::unwrap_used)]

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(60);

/// The `oshal` binary under test.
pub fn oshal_bin() -> PathBuf {
    if let Ok(p) = std::env::var("OSHAL_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-<hash> → target/<profile>/oshal
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join(format!("oshal{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --bin oshal` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// A running `oshal serve`.
pub struct Server {
    child: Option<Child>,
    pub url: String,
    pub token: String,
    pub data_dir: PathBuf,
    http: reqwest::Client,
}

impl Server {
    /// Starts `oshal serve` on a free loopback port over `data_dir`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Result<Server> {
        let mut child = Command::new(oshal_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("OSHAL_API_TOKEN")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning oshal serve")?;
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(WAIT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                bail!("oshal serve did not start within {WAIT:?}");
            }
        };
        let token = std::fs::read_to_string(data_dir.join("api-token"))
            .context("reading the API token")?
            .trim()
            .to_owned();
        Ok(Server {
            child: Some(child),
            url,
            token,
            data_dir: data_dir.to_owned(),
            http: reqwest::Client::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
    }

    pub fn raw(&self) -> &reqwest::Client {
        &self.http
    }

    pub async fn json(&self, path: &str) -> Result<serde_json::Value> {
        let r = self.get(path).send().await?;
        let status = r.status();
        let v: serde_json::Value = r.json().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {v}");
        }
        Ok(v)
    }

    /// Submits a chat ticket; returns its id.
    pub async fn submit(&self, prompt: &str) -> Result<String> {
        let r = self
            .post("/api/v1/tickets")
            .json(&serde_json::json!({"kind": "chat", "payload": {"prompt": prompt}}))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("submit: {} {}", r.status(), r.text().await?);
        }
        let v: serde_json::Value = r.json().await?;
        Ok(v["id"].as_str().unwrap().to_owned())
    }

    /// Polls until `check` holds for the ticket, or fails after `WAIT`.
    pub async fn wait_ticket(
        &self,
        id: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.json(&format!("/api/v1/tickets/{id}")).await?;
            if check(&v) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("ticket {id} did not get there: {v:#}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn wait_terminal(&self, id: &str) -> Result<serde_json::Value> {
        self.wait_ticket(id, |v| {
            matches!(
                v["state"].as_str(),
                Some("succeeded" | "dead" | "cancelled")
            )
        })
        .await
    }

    /// Every ticket, paging through the list.
    pub async fn all_tickets(&self) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .json(&format!("/api/v1/tickets?limit=1000&cursor={cursor}"))
                .await?;
            out.extend(page["tickets"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = c.to_owned(),
                None => return Ok(out),
            }
        }
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let mut c = self.child.take().context("already stopped")?;
        Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()?;
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = c.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                bail!("oshal serve did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real model: llama.cpp's llama-server with SmolLM2-135M, built and
/// cached by `scripts/llama-server.sh`.
pub struct LlamaServer {
    child: Child,
    pub base_url: String,
}

impl LlamaServer {
    pub async fn start() -> Result<LlamaServer> {
        let (server, model) = match (std::env::var("LLAMA_SERVER"), std::env::var("LLAMA_MODEL")) {
            (Ok(s), Ok(m)) => (PathBuf::from(s), PathBuf::from(m)),
            _ => {
                let out = Command::new(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../scripts/llama-server.sh"
                ))
                .stderr(Stdio::inherit())
                .output()
                .context("running scripts/llama-server.sh")?;
                if !out.status.success() {
                    bail!("scripts/llama-server.sh failed");
                }
                let text = String::from_utf8(out.stdout)?;
                let get = |k: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(k))
                        .map(PathBuf::from)
                        .context("llama-server.sh output")
                };
                (get("LLAMA_SERVER=")?, get("LLAMA_MODEL=")?)
            }
        };
        let port = free_port();
        let child = Command::new(&server)
            .args(["-m"])
            .arg(&model)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--alias",
                "smollm2-135m",
                "-c",
                "2048",
                "-t",
                "2",
                "--parallel",
                "2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", server.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{base}/health")).send().await
                && r.status().is_success()
            {
                break;
            }
            if Instant::now() > deadline {
                bail!("llama-server did not become healthy within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(LlamaServer {
            child,
            base_url: format!("{base}/v1"),
        })
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
