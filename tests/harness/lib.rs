//! The end-to-end harness: real `oshal` processes on temp-dir data, a real
//! HTTP client, and a real model server when a test needs one.
//!
//! The `oshal` binary is found next to the test executable (`target/<profile>/`),
//! or at `$OSHAL_BIN`. `cargo test --workspace` and nextest build it, because
//! `oshal-core` has integration tests of its own CLI.

#![allow(clippy::unwrap_used)]

pub mod engine;
pub mod mesh;
pub mod outside;
mod private;
pub mod slowlink;
pub mod tailnet;
pub mod venue;

pub use private::{PrivatePostgres, PrivateRedis};

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
    sibling_bin("oshal")
}

/// The desktop app's binary under test.
pub fn desktop_bin() -> PathBuf {
    sibling_bin("oshal-desktop")
}

/// A workspace binary next to this test's own executable.
fn sibling_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --bin {name}` (cargo test --workspace does)",
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
        Self::start_logged(data_dir, extra, None)
    }

    /// As [`Self::start`], with its log (at TRACE) in `log` if given.
    pub fn start_logged(data_dir: &Path, extra: &[&str], log: Option<&Path>) -> Result<Server> {
        Self::launch(
            Command::new(oshal_bin()),
            "127.0.0.1:0",
            None,
            data_dir,
            extra,
            log,
        )
    }

    /// `oshal serve` on host `k` of a tailnet, listening on `port` of every
    /// address it has; the test reaches it through the host's underlay.
    pub fn start_on(
        net: &tailnet::Tailnet,
        k: u8,
        port: u16,
        data_dir: &Path,
        extra: &[&str],
        log: Option<&Path>,
    ) -> Result<Server> {
        let url = format!("http://{}:{port}", net.underlay(k));
        let listen = format!("0.0.0.0:{port}");
        Self::launch(
            net.command(k, oshal_bin()),
            &listen,
            Some(url),
            data_dir,
            extra,
            log,
        )
    }

    fn launch(
        mut cmd: Command,
        listen: &str,
        url: Option<String>,
        data_dir: &Path,
        extra: &[&str],
        log: Option<&Path>,
    ) -> Result<Server> {
        cmd.args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("OSHAL_API_TOKEN");
        // Scheduled security scans file triage tickets of their own; tests
        // that count tickets must not see them, so scans run on demand here
        // unless a test asks for a schedule.
        if !extra.contains(&"--security-scan-every-min") {
            cmd.args(["--security-scan-every-min", "0"]);
        }
        let (child, line, _) = spawn_until(cmd, "oshal serve", "listening on ", log)?;
        let url = url.unwrap_or_else(|| line["listening on ".len()..].to_owned());
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

    pub fn put(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .put(format!("{}{path}", self.url))
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

    /// Turns off the operations loop's automatic investigations (of the
    /// `default` tenant's incidents, where the platform's own land), for a
    /// test that counts every attempt the fleet charges.
    pub async fn no_investigations(&self) -> Result<()> {
        let mut settings = self.json("/api/v1/ops/settings").await?["settings"].take();
        settings["investigate"] = serde_json::Value::Bool(false);
        let r = self
            .http
            .put(format!("{}/api/v1/ops/settings", self.url))
            .bearer_auth(&self.token)
            .json(&settings)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "PUT /api/v1/ops/settings: {} {}",
                r.status(),
                r.text().await?
            );
        }
        Ok(())
    }

    /// Submits a chat ticket; returns its id.
    pub async fn submit(&self, prompt: &str) -> Result<String> {
        self.submit_chat(serde_json::json!({ "prompt": prompt }))
            .await
    }

    /// Submits a chat ticket with this payload (`prompt`, `max_tokens`, …);
    /// returns its id.
    pub async fn submit_chat(&self, payload: serde_json::Value) -> Result<String> {
        let r = self
            .post("/api/v1/tickets")
            .json(&serde_json::json!({"kind": "chat", "payload": payload}))
            .send()
            .await?;
        if r.status() != 201 {
            bail!("submit: {} {}", r.status(), r.text().await?);
        }
        let v: serde_json::Value = r.json().await?;
        Ok(v["id"].as_str().unwrap().to_owned())
    }

    /// Submits one chat ticket per prompt, `concurrency` at a time; returns
    /// their ids (in completion order). Panics on a refusal.
    pub async fn submit_all(
        &self,
        prompts: impl IntoIterator<Item = String>,
        concurrency: usize,
    ) -> Vec<String> {
        let payloads = prompts
            .into_iter()
            .map(|p| serde_json::json!({ "prompt": p }));
        self.submit_all_chats(payloads, concurrency).await
    }

    /// Submits one chat ticket per payload, `concurrency` at a time; returns
    /// their ids (in completion order). Panics on a refusal.
    pub async fn submit_all_chats(
        &self,
        payloads: impl IntoIterator<Item = serde_json::Value>,
        concurrency: usize,
    ) -> Vec<String> {
        use futures::StreamExt;
        futures::stream::iter(payloads)
            .map(|p| async move { self.submit_chat(p).await.unwrap() })
            .buffer_unordered(concurrency)
            .collect()
            .await
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
        let mut path = "/api/v1/tickets?limit=1000".to_owned();
        loop {
            let page = self.json(&path).await?;
            out.extend(page["tickets"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("/api/v1/tickets?limit=1000&cursor={c}"),
                None => return Ok(out),
            }
        }
    }

    /// `oshal ARGS…` against this server with the operator's token; its
    /// JSON answer (`null` for none). Fails the test if the command does.
    pub fn cli(&self, args: &[&str]) -> serde_json::Value {
        let out = Command::new(oshal_bin())
            .args(args)
            .env("OSHAL_API", &self.url)
            .env("OSHAL_API_TOKEN", &self.token)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "oshal {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill9(&mut self) {
        kill_now(self.child.take());
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let c = self.child.take().context("already stopped")?;
        terminate(c, "oshal serve")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A running `oshal node`.
pub struct Node {
    child: Option<Child>,
    pub name: String,
    /// Its later "node … up" lines (a restart it was ordered to make).
    ups: std::sync::mpsc::Receiver<String>,
}

impl Node {
    /// Starts `oshal node --name NAME` with `extra` arguments and waits until it is up.
    pub fn start(name: &str, extra: &[&str]) -> Result<Node> {
        Self::start_logged(name, extra, None)
    }

    /// As [`Self::start`], with its log (at TRACE) in `log` if given.
    pub fn start_logged(name: &str, extra: &[&str], log: Option<&Path>) -> Result<Node> {
        Self::launch(Command::new(oshal_bin()), name, extra, log)
    }

    /// `oshal node` on host `k` of a tailnet.
    pub fn start_on(
        net: &tailnet::Tailnet,
        k: u8,
        name: &str,
        extra: &[&str],
        log: Option<&Path>,
    ) -> Result<Node> {
        Self::launch(net.command(k, oshal_bin()), name, extra, log)
    }

    fn launch(mut cmd: Command, name: &str, extra: &[&str], log: Option<&Path>) -> Result<Node> {
        cmd.args(["node", "--name", name]).args(extra);
        let (child, _, ups) = spawn_until(cmd, "oshal node", "node ", log)?;
        Ok(Node {
            child: Some(child),
            name: name.to_owned(),
            ups,
        })
    }

    /// Its process id (the same across a restart it was ordered to make:
    /// the process replaces its own image).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits for its next "node … up" line, as after an ordered restart.
    pub fn next_up(&self) -> Result<String> {
        self.ups
            .recv_timeout(WAIT)
            .with_context(|| format!("node {} did not come up again within {WAIT:?}", self.name))
    }

    /// Whether the process is still running (not exited, not reaped).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `kill -9`: no goodbye; its heartbeat just stops.
    pub fn kill9(&mut self) {
        kill_now(self.child.take());
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let c = self.child.take().context("already stopped")?;
        terminate(c, "oshal node")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Spawns `cmd` (quiet logs on stderr, or every log line in `log`; stdout
/// piped) and waits for its first stdout line starting with `prefix`, which
/// says it is up; returns that line, and the later ones so prefixed.
fn spawn_until(
    mut cmd: Command,
    what: &str,
    prefix: &'static str,
    log: Option<&Path>,
) -> Result<(Child, String, std::sync::mpsc::Receiver<String>)> {
    match log {
        Some(path) => cmd
            .env("RUST_LOG", "trace")
            .stderr(std::fs::File::create(path).context("creating the log")?),
        None => cmd.env("RUST_LOG", "warn").stderr(Stdio::inherit()),
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with(prefix) {
                let _ = tx.send(line);
            }
        }
    });
    match rx.recv_timeout(WAIT) {
        Ok(line) => Ok((child, line, rx)),
        Err(_) => {
            let _ = child.kill();
            bail!("{what} did not start within {WAIT:?}")
        }
    }
}

/// SIGKILL and reap: no shutdown, no flush.
fn kill_now(child: Option<Child>) {
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}

fn terminate(mut c: Child, what: &str) -> Result<std::process::ExitStatus> {
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
            bail!("{what} did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The PostgreSQL administrator URL tests use (`OSHAL_TEST_POSTGRES`).
pub fn postgres_admin_url() -> String {
    std::env::var("OSHAL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis URL tests use (`OSHAL_TEST_REDIS`).
pub fn redis_url() -> String {
    std::env::var("OSHAL_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// A fleet's own schema and key prefix on the shared servers; the schema is
/// dropped and the keys deleted when the test is done with it.
pub struct FleetSpace {
    pub schema: String,
    pub prefix: String,
    pub redis: String,
    pub postgres_admin: String,
    /// Where the fleet's processes write their logs (at TRACE), if anywhere:
    /// `serve.log`, `node-<name>.log`.
    pub logs: Option<PathBuf>,
}

impl FleetSpace {
    /// On the shared servers.
    pub async fn new() -> Result<FleetSpace> {
        Self::on(&postgres_admin_url(), &redis_url()).await
    }

    /// On the given servers (e.g. a [`PrivateRedis`] or [`PrivatePostgres`]).
    pub async fn on(postgres_admin: &str, redis: &str) -> Result<FleetSpace> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let space = FleetSpace {
            schema: format!("e2e_{id}"),
            prefix: format!("e2e-{id}"),
            redis: redis.to_owned(),
            postgres_admin: postgres_admin.to_owned(),
            logs: None,
        };
        oshal_core::store::postgres::setup(postgres_admin, &space.schema).await?;
        Ok(space)
    }

    /// `oshal serve` as this fleet's controller, over `data_dir`.
    pub fn serve(&self, data_dir: &Path) -> Result<Server> {
        self.serve_with(data_dir, &[])
    }

    /// `oshal serve` as this fleet's controller, with `extra` arguments.
    pub fn serve_with(&self, data_dir: &Path, extra: &[&str]) -> Result<Server> {
        let args = self.serve_args();
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(extra);
        let log = self.logs.as_ref().map(|d| d.join("serve.log"));
        Server::start_logged(data_dir, &args, log.as_deref())
    }

    /// `oshal node --name NAME` in this fleet, with `extra` arguments.
    pub fn node(&self, name: &str, extra: &[&str]) -> Result<Node> {
        let args = self.node_args();
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(extra);
        let log = self
            .logs
            .as_ref()
            .map(|d| d.join(format!("node-{name}.log")));
        Node::start_logged(name, &args, log.as_deref())
    }

    /// `serve` arguments that make it this fleet's controller.
    fn serve_args(&self) -> Vec<String> {
        let app = oshal_core::store::postgres::as_role(&self.postgres_admin, "oshal_app").unwrap();
        vec![
            "--postgres".into(),
            app,
            "--postgres-schema".into(),
            self.schema.clone(),
            "--redis".into(),
            self.redis.clone(),
            "--redis-prefix".into(),
            self.prefix.clone(),
        ]
    }

    /// `node` arguments that join this fleet.
    fn node_args(&self) -> Vec<String> {
        vec![
            "--redis".into(),
            self.redis.clone(),
            "--redis-prefix".into(),
            self.prefix.clone(),
        ]
    }

    pub async fn cleanup(self) -> Result<()> {
        oshal_core::store::postgres::drop_schema(&self.postgres_admin, &self.schema).await?;
        let client = redis::Client::open(self.redis.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        Ok(())
    }
}

/// Every file under `dir`, however deep.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
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
    /// The name the server answers to (`--alias`).
    pub const MODEL: &str = "smollm2-135m";

    /// The flags that point `oshal serve` or `oshal node` at this server.
    pub fn model_flags(&self) -> [&str; 4] {
        ["--model-url", &self.base_url, "--model-name", Self::MODEL]
    }

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
                Self::MODEL,
                // 2,048 tokens a slot (two slots): room for the workflow
                // generator's schema-laden prompt and its reply.
                "-c",
                "4096",
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
