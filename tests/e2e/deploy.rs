//! The fleet in containers (`deploy/`), for real. The images
//! `scripts/images` builds with no registry run `deploy/compose.yaml`
//! under podman-compose: a controller, two nodes, PostgreSQL, Redis and
//! OpenBao, every password and token a file secret. Tickets flow over the
//! API to the nodes' bots, which run a real model (llama-server, on the
//! host); a node container is killed (SIGKILL) mid-load, then the nodes
//! restart one at a time (SIGTERM): every ticket succeeds, its ledger has
//! one row per attempt. The Kubernetes manifests (`deploy/k8s`) validate
//! strictly against Kubernetes 1.37 and the compose file against the
//! compose-spec schema, and the controller's and nodes' Deployments run on
//! `podman kube play`. The tools come from `ensure_container_tools`
//! (`scripts/lib.sh`), which `scripts/test` and `scripts/images` run.

use anyhow::{Context, Result, bail};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Kubernetes version the manifests are validated against.
const KUBERNETES: &str = "1.37.0";
/// The model the nodes run in the compose test (llama-server's --alias).
const MODEL: &str = "smollm2-135m";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where `ensure_container_tools` put the tools.
struct Tools {
    containers_conf: String,
    podman_compose: String,
    kubernetes_validate: String,
    check_jsonschema: String,
}

/// Installs what is missing (quick when nothing is) and says where it is.
fn tools() -> &'static Tools {
    static TOOLS: std::sync::OnceLock<Tools> = std::sync::OnceLock::new();
    TOOLS.get_or_init(|| {
        let script = ". scripts/lib.sh && ensure_container_tools >&2 && \
             printf '%s\\n' \"$CONTAINERS_CONF\" \"$OSHAL_PODMAN_COMPOSE\" \
             \"$OSHAL_KUBERNETES_VALIDATE\" \"$OSHAL_CHECK_JSONSCHEMA\"";
        let out = run(Command::new("bash")
            .args(["-c", script])
            .current_dir(repo()));
        let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
        assert_eq!(lines.len(), 4, "ensure_container_tools: {}", stdout(&out));
        Tools {
            containers_conf: lines[0].clone(),
            podman_compose: lines[1].clone(),
            kubernetes_validate: lines[2].clone(),
            check_jsonschema: lines[3].clone(),
        }
    })
}

/// Runs `cmd`; fails the test, with its output, unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} did not start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}\n{}",
        out.status,
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", &tools().containers_conf);
    cmd
}

/// `podman ARGS…`'s standard output; fails the test if it fails.
fn podman_ok(args: &[&str]) -> String {
    stdout(&run(podman().args(args))).trim().to_owned()
}

/// The images, built (or found unchanged) by `scripts/images` from the
/// `oshal` under test: `OSHAL_IMAGE` and the others, as compose reads them.
fn images() -> BTreeMap<String, String> {
    let started = Instant::now();
    // The images' health checks are its `oshal health`.
    let help = Command::new(oshal_e2e::oshal_bin())
        .args(["health", "--help"])
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "{} has no `health` command: build it again (cargo build --bin oshal)",
        oshal_e2e::oshal_bin().display()
    );
    let out = run(Command::new(repo().join("scripts/images"))
        .env("OSHAL_BIN", oshal_e2e::oshal_bin())
        .env("CONTAINERS_CONF", &tools().containers_conf)
        .stderr(Stdio::inherit()));
    let images: BTreeMap<String, String> = stdout(&out)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for var in [
        "OSHAL_IMAGE",
        "OSHAL_POSTGRES_IMAGE",
        "OSHAL_REDIS_IMAGE",
        "OSHAL_OPENBAO_IMAGE",
    ] {
        assert!(images.contains_key(var), "scripts/images printed no {var}");
    }
    eprintln!("images ready in {:.1} s", started.elapsed().as_secs_f64());
    images
}

/// `deploy/secrets.sh DIR`: every secret, owned by the uid that reads it.
fn secrets(dir: &Path) -> PathBuf {
    let secrets = dir.join("secrets");
    run(Command::new(repo().join("deploy/secrets.sh")).arg(&secrets));
    secrets
}

fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::now_v7().simple().to_string();
    format!("{prefix}{}", &id[id.len() - 10..])
}

/// Polls `check` every 200 ms until it holds, or fails after `within`.
async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A controller's API, as a client holding the operator token.
#[derive(Clone)]
struct Api {
    url: String,
    token: String,
    http: reqwest::Client,
    /// Answers 503 (the store away for a moment) that were retried.
    retried: Arc<std::sync::atomic::AtomicUsize>,
}

impl Api {
    fn new(url: String, token_file: &Path) -> Api {
        let token = std::fs::read_to_string(token_file)
            .unwrap()
            .trim()
            .to_owned();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Api {
            url,
            token,
            http,
            retried: Arc::default(),
        }
    }

    /// `method path` with `body`: its status and JSON. A 503 (the store is
    /// away) is retried for up to 30 s, as the API asks of a client (a
    /// submission with the same idempotency key, so it runs once).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, serde_json::Value)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.url))
                .bearer_auth(&self.token);
            if let Some(body) = body {
                request = request.json(body);
            }
            let r = request.send().await?;
            let status = r.status().as_u16();
            let text = r.text().await?;
            if status == 503 && Instant::now() < deadline {
                self.retried
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            let v = match text.is_empty() {
                true => serde_json::Value::Null,
                false => serde_json::from_str(&text)?,
            };
            if !(200..300).contains(&status) {
                bail!("{method} {path}: {status} {v}");
            }
            return Ok((status, v));
        }
    }

    async fn get(&self, path: &str) -> Result<serde_json::Value> {
        Ok(self.call(reqwest::Method::GET, path, None).await?.1)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: serde_json::Value,
    ) -> Result<u16> {
        Ok(self.call(method, path, Some(&body)).await?.0)
    }

    /// Whether the controller answers healthy with `bots` bots live (asked
    /// once).
    async fn ready(&self, bots: u64) -> bool {
        let health = format!("{}/api/v1/health", self.url);
        let Ok(r) = self.http.get(health).send().await else {
            return false;
        };
        r.json::<serde_json::Value>()
            .await
            .is_ok_and(|h| h["ok"] == true && h["bots_live"] == bots)
    }

    /// A chat ticket whose reply is at most `max_tokens`, under an
    /// idempotency key; its id.
    async fn submit(&self, key: &str, prompt: &str, max_tokens: u32) -> Result<String> {
        let body = serde_json::json!({
            "kind": "chat",
            "payload": {"prompt": prompt, "max_tokens": max_tokens},
            "idempotency_key": key,
        });
        let (_, v) = self
            .call(reqwest::Method::POST, "/api/v1/tickets", Some(&body))
            .await?;
        Ok(v["id"].as_str().context("an id")?.to_owned())
    }

    async fn ticket(&self, id: &str) -> Result<serde_json::Value> {
        self.get(&format!("/api/v1/tickets/{id}")).await
    }

    /// Waits until the ticket has ended; its last state.
    async fn finished(&self, id: &str, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.ticket(id).await.unwrap();
            if matches!(
                v["state"].as_str(),
                Some("succeeded" | "dead" | "cancelled")
            ) {
                return v;
            }
            assert!(Instant::now() < deadline, "ticket {id} did not end: {v:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until bots whose ids start with `prefix` hold `n` tickets.
    async fn wait_held(&self, what: &str, prefix: &str, n: u64) {
        let deadline = Instant::now() + oshal_e2e::WAIT;
        while self.held_by(prefix).await < n {
            if Instant::now() > deadline {
                let bots = self.get("/api/v1/bots").await;
                panic!("timed out waiting for {n} tickets in {what}'s hands: {bots:#?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Tickets held (routed, unfinished) by bots whose ids start with `prefix`.
    async fn held_by(&self, prefix: &str) -> u64 {
        let Ok(bots) = self.get("/api/v1/bots").await else {
            return 0;
        };
        bots.as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["id"].as_str().is_some_and(|id| id.starts_with(prefix)))
            .map(|b| b["in_flight"].as_u64().unwrap_or(0))
            .sum()
    }

    /// Turns off the operations loop's automatic investigations: a node
    /// killed on purpose is not an incident to spend the bots on here.
    async fn no_investigations(&self) {
        let mut settings = self.get("/api/v1/ops/settings").await.unwrap()["settings"].take();
        settings["investigate"] = serde_json::Value::Bool(false);
        self.send(reqwest::Method::PUT, "/api/v1/ops/settings", settings)
            .await
            .unwrap();
    }
}

/// Submits a ticket every `every` until stopped; every id it got. Each
/// asks for a long reply, cut at 64 tokens (about 0.7 s of the model here):
/// work the bots still hold when a node goes.
struct Load {
    ids: Arc<Mutex<Vec<String>>>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl Load {
    fn start(api: &Api, label: &str, every: Duration) -> Load {
        let ids = Arc::new(Mutex::new(Vec::new()));
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn({
            let (api, ids, stop, label) =
                (api.clone(), ids.clone(), stop.clone(), label.to_owned());
            async move {
                let mut tick = tokio::time::interval(every);
                for i in 0.. {
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {}
                    }
                    let prompt = format!("{label} {i}: count from one to fifty in words.");
                    let id = api.submit(&format!("{label}-{i}"), &prompt, 64).await?;
                    ids.lock().unwrap().push(id);
                }
                Ok(())
            }
        });
        Load { ids, stop, task }
    }

    /// Stops it; the ids, or the refusal that stopped it before.
    async fn stop(self) -> Vec<String> {
        self.stop.cancel();
        self.task.await.unwrap().expect("every submission accepted");
        std::mem::take(&mut *self.ids.lock().unwrap())
    }
}

/// What a batch of tickets came to: every one succeeded (else the test
/// fails), how many were requeued, how many ledger rows they have, how
/// many were charged for more than one attempt.
struct Outcome {
    tickets: usize,
    requeued: usize,
    ledger_rows: usize,
    charged_again: usize,
}

/// Waits for every ticket to end and checks it succeeded with one ledger
/// row per attempt, its succeeding attempt among them.
async fn every_ticket_succeeded(api: &Api, ids: &[String]) -> Outcome {
    let mut outcome = Outcome {
        tickets: ids.len(),
        requeued: 0,
        ledger_rows: 0,
        charged_again: 0,
    };
    for id in ids {
        let v = api.finished(id, Duration::from_secs(240)).await;
        assert_eq!(v["state"], "succeeded", "{v:#}");
        let attempts: Vec<u64> = v["ledger"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["attempt"].as_u64().unwrap())
            .collect();
        let unique: HashSet<u64> = attempts.iter().copied().collect();
        assert_eq!(unique.len(), attempts.len(), "one row per attempt: {v:#}");
        assert!(
            unique.contains(&v["attempts"].as_u64().unwrap()),
            "the succeeding attempt is charged: {v:#}"
        );
        outcome.ledger_rows += attempts.len();
        // An attempt requeued while its call was under way (or, on a node
        // back under the same name, still in its lane) may have run too:
        // charged once, as its own attempt.
        outcome.charged_again += usize::from(attempts.len() > 1);
        let requeued = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"].as_str().unwrap_or("").contains("requeued"));
        outcome.requeued += usize::from(requeued);
    }
    outcome
}

/// llama-server with SmolLM2-135M (built and cached by
/// `scripts/llama-server.sh`), listening on `host` alone: where the
/// containers reach this host (their network's gateway).
struct Llama(Child);

impl Llama {
    async fn start(host: &str, port: u16) -> Llama {
        let (server, model) = match (std::env::var("LLAMA_SERVER"), std::env::var("LLAMA_MODEL")) {
            (Ok(s), Ok(m)) => (s, m),
            _ => {
                let out =
                    run(Command::new(repo().join("scripts/llama-server.sh"))
                        .stderr(Stdio::inherit()));
                let text = stdout(&out);
                let get = |k: &str| {
                    text.lines()
                        .find_map(|l| l.strip_prefix(k))
                        .unwrap_or_else(|| panic!("scripts/llama-server.sh printed no {k}"))
                        .to_owned()
                };
                (get("LLAMA_SERVER="), get("LLAMA_MODEL="))
            }
        };
        let child = Command::new(&server)
            .args(["-m", &model, "--host", host, "--port", &port.to_string()])
            .args(["--alias", MODEL, "-c", "2048", "-t", "2", "--parallel", "2"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {server}: {e}"));
        let mut llama = Llama(child);
        let http = reqwest::Client::new();
        let health = format!("http://{host}:{port}/health");
        wait_for("llama-server", oshal_e2e::WAIT, async || {
            if let Ok(Some(status)) = llama.0.try_wait() {
                panic!("llama-server on {host}:{port} exited: {status}");
            }
            http.get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        llama
    }
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A podman command run when dropped (what a test made, removed).
struct Removed<'a>(Vec<&'a str>);

impl Drop for Removed<'_> {
    fn drop(&mut self) {
        let _ = podman()
            .args(&self.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A compose project of its own (its name, ports, secrets and volumes),
/// taken down with its volumes when dropped; on a failure its containers'
/// last log lines are printed first.
struct Stack {
    project: String,
    files: Vec<PathBuf>,
    env: Vec<(String, String)>,
}

impl Stack {
    fn compose(&self) -> Command {
        let mut cmd = Command::new(&tools().podman_compose);
        cmd.env("CONTAINERS_CONF", &tools().containers_conf)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(["-p", &self.project]);
        for f in &self.files {
            cmd.arg("-f").arg(f);
        }
        cmd
    }

    fn container(&self, service: &str, n: u32) -> String {
        format!("{}_{service}_{n}", self.project)
    }

    /// Its containers, as podman lists them.
    fn containers(&self) -> Result<Vec<String>> {
        let filter = format!("label=io.podman.compose.project={}", self.project);
        let out = podman()
            .args(["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
            .output()?;
        if !out.status.success() {
            bail!("podman ps: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(stdout(&out).lines().map(str::to_owned).collect())
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for c in self.containers().unwrap_or_default() {
                if let Ok(out) = podman().args(["logs", "--tail", "15", &c]).output() {
                    eprintln!(
                        "--- {c}:\n{}{}",
                        stdout(&out),
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        let _ = self
            .compose()
            .args(["down", "-v", "-t", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// podman before 4.6 cannot wait for a container's health, and fails to
/// start a container whose dependency has dependencies of its own (here the
/// controller, through db-setup): there podman-compose starts the services
/// in order without waiting (`--no-deps`), and each outlasts a late
/// dependency by its restart policy.
fn podman_waits_on_health() -> bool {
    let version = podman_ok(&["version", "--format", "{{.Client.Version}}"]);
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (4, 6)
}

/// What the ids of a node container's bots start with: its node names
/// itself `<hostname>-1-<rand>` (`oshal node` is its process 1; the random
/// part is new at each start), and its bots `<hostname>-1-<rand>-bot-NN`.
fn bots_of(container: &str) -> String {
    format!(
        "{}-1-",
        podman_ok(&["inspect", "--format", "{{.Config.Hostname}}", container])
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_in_containers_loses_no_ticket_to_a_killed_or_restarted_node() {
    let images = images();
    // Each image runs as a user other than root, checks its own health,
    // and says what it is (OCI labels).
    for image in images.values() {
        let user = podman_ok(&["image", "inspect", "--format", "{{.Config.User}}", image]);
        assert!(
            user.starts_with(|c: char| c.is_ascii_digit()) && !user.starts_with("0:"),
            "{image}: user {user:?}"
        );
        let check = podman_ok(&[
            "image",
            "inspect",
            "--format",
            "{{json .HealthCheck}}",
            image,
        ]);
        assert!(
            check.contains("\"CMD\""),
            "{image}: no health check ({check})"
        );
        for label in ["title", "version", "created", "licenses"] {
            let value = podman_ok(&[
                "image",
                "inspect",
                "--format",
                &format!("{{{{index .Labels \"org.opencontainers.image.{label}\"}}}}"),
                image,
            ]);
            assert!(
                !value.is_empty(),
                "{image}: no org.opencontainers.image.{label}"
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets(dir.path());
    let port = oshal_e2e::free_port();
    let model_port = oshal_e2e::free_port();
    let project = unique("oshal-e2e-");
    // The way out, made before compose makes the rest (compose uses a
    // network that exists): its gateway is the host as the nodes reach it,
    // where the model listens, and nowhere else.
    let edge = format!("{project}_edge");
    podman_ok(&["network", "create", &edge]);
    let _edge = Removed(vec!["network", "rm", "-f", &edge]);
    let gateway = podman_ok(&[
        "network",
        "inspect",
        "--format",
        "{{range .Subnets}}{{.Gateway}}{{end}}",
        &edge,
    ]);
    // The test's own settings over deploy/compose.yaml: the nodes run the
    // real model on the host; no scheduled security scan files tickets of
    // its own among the ones counted here.
    let overrides = dir.path().join("compose.test.yaml");
    std::fs::write(
        &overrides,
        format!(
            "services:\n  controller:\n    command: [serve, --listen, \"0.0.0.0:7411\", \
             --postgres-schema, oshal, --redis-prefix, oshal, --security-scan-every-min, \"0\"]\n  \
             node:\n    command: [node, --redis-prefix, oshal, --bots, \"2\", --model-url, \
             \"http://{gateway}:{model_port}/v1\", --model-name, {MODEL}]\n"
        ),
    )
    .unwrap();
    let mut env: Vec<(String, String)> = images.into_iter().collect();
    env.push(("OSHAL_SECRETS".into(), secrets.display().to_string()));
    env.push(("OSHAL_API_PORT".into(), port.to_string()));
    let stack = Stack {
        project,
        files: vec![repo().join("deploy/compose.yaml"), overrides],
        env,
    };

    let started = Instant::now();
    let mut up = stack.compose();
    up.args(["up", "-d", "--scale", "node=2"]);
    if !podman_waits_on_health() {
        up.arg("--no-deps");
    }
    run(up.stdout(Stdio::null()));
    eprintln!(
        "podman-compose up: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // (The network's bridge exists once a container is on it.)
    let _llama = Llama::start(&gateway, model_port).await;
    let api = Api::new(
        format!("http://127.0.0.1:{port}"),
        &secrets.join("api-token"),
    );
    wait_for(
        "the controller and 4 bots",
        Duration::from_secs(120),
        async || api.ready(4).await,
    )
    .await;
    let first = api
        .submit("first", "Say hello in one word.", 8)
        .await
        .unwrap();
    let v = api.finished(&first, Duration::from_secs(120)).await;
    assert_eq!(v["state"], "succeeded", "{v:#}");
    let to_first = started.elapsed();
    eprintln!(
        "compose up to the first succeeded ticket: {:.1} s",
        to_first.as_secs_f64()
    );
    api.no_investigations().await;

    // Every container runs as a user other than root, with limits, and
    // holds no password or token in its environment.
    let values: Vec<String> = std::fs::read_dir(&secrets)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .collect();
    let containers = stack.containers().unwrap();
    assert_eq!(containers.len(), 7, "{containers:?}");
    for c in &containers {
        let user = podman_ok(&["inspect", "--format", "{{.Config.User}}", c]);
        assert!(
            !user.is_empty() && !user.starts_with("0") && !user.starts_with("root"),
            "{c} runs as {user:?}"
        );
        let limits = podman_ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
            c,
        ]);
        assert!(
            limits.split(' ').all(|n| n.parse::<u64>().unwrap() > 0),
            "{c} has no memory or CPU limit: {limits}"
        );
        let environment = podman_ok(&["inspect", "--format", "{{json .Config.Env}}", c]);
        for value in &values {
            let secret_line = value.rsplit(':').next().unwrap();
            assert!(
                !environment.contains(secret_line),
                "{c}: a secret is in its environment"
            );
        }
    }
    // Each health check passes (podman runs them on demand here: with no
    // systemd, it schedules none).
    for c in &containers {
        if c.contains("db-setup") {
            continue;
        }
        // As a runtime judges it: unhealthy after 3 failures in a row, an
        // interval apart (a busy machine may fail one).
        let mut tries = 0;
        loop {
            let out = podman().args(["healthcheck", "run", c]).output().unwrap();
            if out.status.success() {
                break;
            }
            tries += 1;
            if tries == 3 {
                let log = podman_ok(&["inspect", "--format", "{{json .State.Health.Log}}", c]);
                panic!("{c}'s health check failed 3 times: {log}");
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
    // The controller keeps a connector's credential in OpenBao, through the
    // token it was given as a secret; OpenBao shows it under its path.
    let stored = api
        .send(
            reqwest::Method::PUT,
            "/api/v1/connectors/shopfront/credential",
            serde_json::json!({"api_key": "e2e-not-a-real-key"}),
        )
        .await
        .unwrap();
    assert_eq!(stored, 204);
    let vault_token = std::fs::read_to_string(secrets.join("vault-token")).unwrap();
    let listed = podman_ok(&[
        "exec",
        "-e",
        &format!("BAO_TOKEN={vault_token}"),
        &stack.container("openbao", 1),
        "bao",
        "kv",
        "list",
        "-address=http://127.0.0.1:8200",
        "-mount=secret",
        "oshal/connector",
    ]);
    assert!(listed.contains("shopfront"), "{listed}");
    // The operator's token, the other one OpenBao made from a secret on
    // its first start, administers it (the root token is revoked).
    let admin = std::fs::read_to_string(secrets.join("openbao-admin-token")).unwrap();
    let policies = podman_ok(&[
        "exec",
        "-e",
        &format!("BAO_TOKEN={admin}"),
        &stack.container("openbao", 1),
        "bao",
        "policy",
        "list",
        "-address=http://127.0.0.1:8200",
    ]);
    assert!(
        policies.contains("oshal-controller") && policies.contains("oshal-operator"),
        "{policies}"
    );

    // A node container killed (SIGKILL) while it holds tickets.
    let node1 = stack.container("node", 1);
    let node2 = stack.container("node", 2);
    // A node's two bots each run one call at a time: holding 3 tickets, it
    // holds one it has not started, which cannot end before it goes.
    let load = Load::start(&api, "kill", Duration::from_millis(200));
    api.wait_held(&node1, &bots_of(&node1), 3).await;
    podman_ok(&["kill", "-s", "KILL", &node1]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids = load.stop().await;
    let killed = every_ticket_succeeded(&api, &ids).await;
    assert!(
        killed.requeued >= 1,
        "node 1 held tickets when it was killed"
    );
    eprintln!(
        "kill -s KILL of a node container: {} tickets, lost 0, requeued {}, ledger rows {}, \
         charged again {}",
        killed.tickets, killed.requeued, killed.ledger_rows, killed.charged_again
    );
    podman_ok(&["start", &node1]);
    wait_for("node 1 back", oshal_e2e::WAIT, async || api.ready(4).await).await;

    // A rolling restart: each node stopped (SIGTERM) while it holds
    // tickets, and started again before the next.
    let load = Load::start(&api, "rolling", Duration::from_millis(200));
    for node in [&node1, &node2] {
        api.wait_held(node, &bots_of(node), 3).await;
        podman_ok(&["stop", "-t", "30", node]);
        let exit = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", node]);
        assert_eq!(exit, "0", "{node} stopped cleanly on SIGTERM");
        // One at a time: the fleet has seen it go before it comes back
        // (under the same name, it would otherwise find its lanes as it
        // left them).
        wait_for(&format!("{node} gone"), oshal_e2e::WAIT, async || {
            api.ready(2).await
        })
        .await;
        podman_ok(&["start", node]);
        wait_for(&format!("{node} back"), oshal_e2e::WAIT, async || {
            api.ready(4).await
        })
        .await;
    }
    let ids = load.stop().await;
    let rolled = every_ticket_succeeded(&api, &ids).await;
    assert!(rolled.requeued >= 2, "each stopped node handed work back");
    eprintln!(
        "rolling restart of the nodes (SIGTERM): {} tickets, lost 0, requeued {}, \
         ledger rows {}, charged again {}",
        rolled.tickets, rolled.requeued, rolled.ledger_rows, rolled.charged_again
    );

    // Nothing else ran, and nothing was charged twice.
    let cost = api.get("/api/v1/cost/summary").await.unwrap();
    assert_eq!(
        cost["total"]["attempts"],
        (1 + killed.ledger_rows + rolled.ledger_rows) as u64,
        "{cost:#}"
    );
    eprintln!(
        "compose test: {:.1} s ({} answers of 503 retried)",
        started.elapsed().as_secs_f64(),
        api.retried.load(std::sync::atomic::Ordering::Relaxed)
    );
}

/// Reads the manifests, keeps what `podman kube play` runs (the ConfigMap
/// and the Deployments), names the pods and volumes uniquely, turns each
/// Secret volume into a host folder of the files `deploy/secrets.sh` made
/// (podman 4.3 writes a Secret's values base64-encoded and root-owned),
/// and gives the pods restartPolicy OnFailure (podman 4.3 restarts an init
/// container under Always, so the pod never starts). Writes kube.yaml, and
/// probes.json: each container's exec probes, to run as a kubelet would.
const KUBE_PLAY: &str = r#"
import json, os, shutil, sys, yaml
k8s, secrets, out, prefix, images = sys.argv[1:6]
images = json.loads(images)
keys = {d["metadata"]["name"]: list(d["stringData"])
        for d in yaml.safe_load_all(open(os.path.join(k8s, "secrets", "oshal-secrets.yaml")))}
docs, probes = [], []
for name in sorted(os.listdir(k8s)):
    if name.endswith(".yaml"):
        docs += [d for d in yaml.safe_load_all(open(os.path.join(k8s, name)))
                 if d and d["kind"] in ("ConfigMap", "Deployment")]
for d in docs:
    if d["kind"] != "Deployment":
        continue
    d["metadata"]["name"] = prefix + d["metadata"]["name"]
    spec = d["spec"]["template"]["spec"]
    spec["restartPolicy"] = "OnFailure"
    names = {v["name"]: prefix + d["metadata"]["name"] + "-" + v["name"] for v in spec.get("volumes", [])}
    for c in spec.get("initContainers", []) + spec["containers"]:
        c["image"] = images.get(c["image"], c["image"])
        for m in c.get("volumeMounts", []):
            m["name"] = names[m["name"]]
    for c in spec["containers"]:
        for kind in ("readinessProbe", "livenessProbe"):
            if "exec" in c.get(kind, {}):
                probes.append({"deployment": d["metadata"]["name"], "container": c["name"],
                               "probe": kind, "command": c[kind]["exec"]["command"]})
    for v in spec.get("volumes", []):
        v["name"] = names[v["name"]]
        if "secret" in v:
            secret = v.pop("secret")["secretName"]
            folder = os.path.join(out, secret)
            os.makedirs(folder, exist_ok=True)
            for key in keys[secret]:
                src, dst = os.path.join(secrets, key), os.path.join(folder, key)
                shutil.copy2(src, dst)
                os.chown(dst, os.stat(src).st_uid, os.stat(src).st_gid)
            v["hostPath"] = {"path": folder, "type": "Directory"}
yaml.safe_dump_all(docs, open(os.path.join(out, "kube.yaml"), "w"))
json.dump(probes, open(os.path.join(out, "probes.json"), "w"))
"#;

/// What the kube play test made, removed when dropped.
struct Played {
    kube: PathBuf,
    containers: Vec<String>,
    network: String,
}

impl Drop for Played {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = podman()
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        if self.kube.exists() {
            quiet(&["kube", "down", &self.kube.display().to_string()]);
        }
        for c in &self.containers {
            quiet(&["rm", "-f", "-v", "-t", "0", c]);
        }
        quiet(&["network", "rm", "-f", &self.network]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_and_node_deployments_run_on_podman_kube_play() {
    let images = images();
    let dir = tempfile::tempdir().unwrap();
    let secrets = secrets(dir.path());
    let prefix = unique("e2e-");
    let mut played = Played {
        kube: dir.path().join("kube.yaml"),
        containers: Vec::new(),
        network: format!("{prefix}-net"),
    };
    podman_ok(&["network", "create", &played.network]);
    // PostgreSQL and Redis stand in for the StatefulSets (a kind podman
    // does not play) from the same images, reached by their Services'
    // names; db-setup runs as its Job's container would.
    let secret = |name: &str| format!("{}:/run/secrets/{name}:ro", secrets.join(name).display());
    let postgres = format!("{prefix}-postgres");
    let redis = format!("{prefix}-redis");
    played.containers.extend([postgres.clone(), redis.clone()]);
    podman_ok(&[
        "run",
        "-d",
        "--name",
        &postgres,
        "--network",
        &played.network,
        "--network-alias",
        "postgres",
        "-v",
        &secret("postgres-password"),
        "-v",
        &secret("oshal-app-password"),
        &images["OSHAL_POSTGRES_IMAGE"],
    ]);
    podman_ok(&[
        "run",
        "-d",
        "--name",
        &redis,
        "--network",
        &played.network,
        "--network-alias",
        "redis",
        &images["OSHAL_REDIS_IMAGE"],
    ]);
    wait_for("PostgreSQL", oshal_e2e::WAIT, async || {
        podman()
            .args(["exec", &postgres, "pg_isready", "-q", "-h", "127.0.0.1"])
            .status()
            .is_ok_and(|s| s.success())
    })
    .await;
    podman_ok(&[
        "run",
        "--rm",
        "--network",
        &played.network,
        "-e",
        "OSHAL_POSTGRES_ADMIN=postgres://postgres@postgres:5432/oshal",
        "-e",
        "PGPASSFILE=/run/secrets/pgpass-admin",
        "-v",
        &secret("pgpass-admin"),
        &images["OSHAL_IMAGE"],
        "db-setup",
        "--schema",
        "oshal",
    ]);

    let tags: serde_json::Map<String, serde_json::Value> = [
        ("localhost/oshal:0.1.0", "OSHAL_IMAGE"),
        ("localhost/oshal-postgres:15", "OSHAL_POSTGRES_IMAGE"),
    ]
    .into_iter()
    .map(|(manifest, var)| (manifest.to_owned(), images[var].clone().into()))
    .collect();
    run(
        Command::new(Path::new(&tools().kubernetes_validate).with_file_name("python3"))
            .args(["-c", KUBE_PLAY])
            .arg(repo().join("deploy/k8s"))
            .arg(&secrets)
            .arg(dir.path())
            .arg(format!("{prefix}-"))
            .arg(serde_json::Value::Object(tags).to_string()),
    );
    let started = Instant::now();
    podman_ok(&[
        "kube",
        "play",
        "--network",
        &played.network,
        &played.kube.display().to_string(),
    ]);
    let controller = format!("{prefix}-controller-pod-0-controller");
    let ip = podman_ok(&[
        "inspect",
        "--format",
        &format!(
            "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
            played.network
        ),
        &controller,
    ]);
    let api = Api::new(format!("http://{ip}:7411"), &secrets.join("api-token"));
    wait_for(
        "the played controller and 4 bots",
        Duration::from_secs(120),
        async || api.ready(4).await,
    )
    .await;
    let id = api
        .submit("first", "Say hello in one word.", 8)
        .await
        .unwrap();
    let v = api.finished(&id, oshal_e2e::WAIT).await;
    assert_eq!(v["state"], "succeeded", "{v:#}");
    eprintln!(
        "podman kube play to the first succeeded ticket: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Each exec probe, run in its container as a kubelet runs it (podman
    // 4.3 turns a liveness probe into a shell command, and the oshal image
    // has no shell).
    let probes: Vec<Probe> = serde_json::from_str::<Vec<serde_json::Value>>(
        &std::fs::read_to_string(dir.path().join("probes.json")).unwrap(),
    )
    .unwrap()
    .iter()
    .map(Probe::from_json)
    .collect();
    assert_eq!(
        probes.len(),
        4,
        "readiness and liveness of both: {probes:#?}"
    );
    let replicas = |deployment: &str| if deployment.ends_with("node") { 2 } else { 1 };
    for p in &probes {
        for i in 0..replicas(&p.deployment) {
            let container = format!("{}-pod-{i}-{}", p.deployment, p.container);
            if let Err(why) = p.passes(&container).await {
                panic!("{container}'s {}: {why}", p.probe);
            }
        }
    }

    // With PostgreSQL away the controller is not ready, and alive: its
    // liveness probe does not restart it for its database's outage.
    podman_ok(&["stop", "-t", "5", &postgres]);
    let of_controller = |kind: &str| {
        probes
            .iter()
            .find(|p| p.deployment.ends_with("controller") && p.probe == kind)
            .unwrap()
    };
    wait_for(
        "the controller to be unready",
        oshal_e2e::WAIT,
        async || of_controller("readinessProbe").run(&controller).is_err(),
    )
    .await;
    if let Err(why) = of_controller("livenessProbe").passes(&controller).await {
        panic!("the controller's liveness probe with its store down: {why}");
    }
}

/// An exec probe of a Deployment's container, as the manifests have it.
#[derive(Debug)]
struct Probe {
    deployment: String,
    container: String,
    probe: String,
    command: Vec<String>,
}

impl Probe {
    fn from_json(v: &serde_json::Value) -> Probe {
        let text = |k: &str| v[k].as_str().unwrap().to_owned();
        Probe {
            deployment: text("deployment"),
            container: text("container"),
            probe: text("probe"),
            command: v["command"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect(),
        }
    }

    /// Whether it passes in `container` as a kubelet judges it: a failure
    /// counts once 3 tries in a row fail (its failureThreshold's default),
    /// 1 s apart; what the last one said.
    async fn passes(&self, container: &str) -> Result<(), String> {
        let mut tries = 0;
        loop {
            match self.run(container) {
                Ok(()) => return Ok(()),
                Err(why) if tries == 2 => return Err(why),
                Err(_) => tries += 1,
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Runs it in `container`, as a kubelet would; what it said if it failed.
    fn run(&self, container: &str) -> Result<(), String> {
        let out = podman()
            .args(["exec", container])
            .args(&self.command)
            .output()
            .unwrap();
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "{}{}",
                stdout(&out),
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    }
}

/// Validates `paths` with kubernetes-validate; the paths it refused.
fn kubernetes_refuses(paths: &[PathBuf]) -> Vec<String> {
    let out = Command::new(&tools().kubernetes_validate)
        .args(["--strict", "--quiet", "-k", KUBERNETES])
        .args(paths)
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let refused: Vec<String> = paths
        .iter()
        .map(|p| p.display().to_string())
        .filter(|p| {
            text.lines()
                .any(|l| l.starts_with("ERROR") && l.contains(p.as_str()))
        })
        .collect();
    assert_eq!(
        out.status.success(),
        refused.is_empty(),
        "kubernetes-validate's verdict and its lines disagree:\n{text}"
    );
    refused
}

/// Validates a compose file against the compose-spec schema check-jsonschema ships.
fn compose_refuses(path: &Path) -> Option<String> {
    let out = Command::new(&tools().check_jsonschema)
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(path)
        .output()
        .unwrap();
    (!out.status.success())
        .then(|| format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr)))
}

fn yaml_under(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = oshal_e2e::files_under(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_manifests_and_the_compose_file_validate() {
    let k8s = yaml_under(&repo().join("deploy/k8s"));
    assert!(k8s.len() >= 8, "deploy/k8s: {k8s:?}");
    let refused = kubernetes_refuses(&k8s);
    assert!(
        refused.is_empty(),
        "not valid Kubernetes {KUBERNETES} (--strict): {refused:?}"
    );
    let compose = repo().join("deploy/compose.yaml");
    if let Some(why) = compose_refuses(&compose) {
        panic!("{} is not a valid compose file:\n{why}", compose.display());
    }

    // The checks see a field that does not exist, and name the file.
    let dir = tempfile::tempdir().unwrap();
    let node = std::fs::read_to_string(repo().join("deploy/k8s/60-node.yaml")).unwrap();
    let bad = dir.path().join("node.yaml");
    std::fs::write(&bad, node.replacen("  replicas: 2", "  replica: 2", 1)).unwrap();
    assert_eq!(
        kubernetes_refuses(&[k8s[0].clone(), bad.clone()]),
        [bad.display().to_string()]
    );
    let text = std::fs::read_to_string(&compose).unwrap();
    let bad = dir.path().join("compose.yaml");
    std::fs::write(
        &bad,
        text.replacen("restart: on-failure", "restarts: on-failure", 1),
    )
    .unwrap();
    let why = compose_refuses(&bad).expect("an unknown field is refused");
    assert!(why.contains("restarts"), "{why}");

    // No credential is written in any of them (the Security Center's rules).
    let rules = oshal_core::secrets::SecretRules::shipped();
    for path in k8s.iter().chain([&compose]) {
        let text = std::fs::read_to_string(path).unwrap();
        let hits = rules.scan(&text);
        assert!(
            hits.is_empty(),
            "{}: a secret on lines {:?}",
            path.display(),
            hits.iter().map(|h| h.line).collect::<Vec<_>>()
        );
    }
}
