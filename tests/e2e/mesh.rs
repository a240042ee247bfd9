//! The mesh through the real binary: `oshal serve` reading Headscale's
//! REST API (fixture servers in the 0.26, 0.27 and 0.28 shapes, over a
//! real HTTP listener) and `tailscaled`'s LocalAPI (over a real unix
//! socket), its API key kept in OpenBao, and `oshal mesh` driving it:
//! status, key, enrol, policy. With `HEADSCALE_URL` + `HEADSCALE_API_KEY`
//! or `TAILSCALE_SOCKET` set, the same reads run against the real daemons.

use oshal_e2e::Server;
use oshal_e2e::mesh::{Headscale, Release, Tailscaled};
use oshal_e2e::outside::OpenBao;
use serde_json::{Value, json};
use std::path::Path;

/// A controller reading `headscale` (if given) and `tailscaled`, its
/// secrets in OpenBao; its log in `<dir>/serve.log`.
fn serve(
    dir: &Path,
    bao: &OpenBao,
    headscale: Option<&str>,
    socket: Option<&Path>,
    user: bool,
) -> Server {
    serve_with(dir, bao, headscale, socket, user, &[])
}

/// As [`serve`], with `extra` arguments.
fn serve_with(
    dir: &Path,
    bao: &OpenBao,
    headscale: Option<&str>,
    socket: Option<&Path>,
    user: bool,
    extra: &[&str],
) -> Server {
    let token_file = dir.join("vault-token");
    std::fs::write(&token_file, &bao.root_token).unwrap();
    let prefix = format!("t{}", uuid::Uuid::new_v4().simple());
    let mut args: Vec<String> = [
        "--vault-addr",
        &bao.addr,
        "--vault-token-file",
        token_file.to_str().unwrap(),
        "--vault-prefix",
        &prefix,
        "--mesh-service",
        "controller=100.64.0.1:8080",
        "--mesh-service",
        "redis=100.64.0.1:6379",
        "--mesh-redis-url",
        "redis://100.64.0.1:6379",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if let Some(url) = headscale {
        args.extend(["--headscale-url".into(), url.into()]);
    }
    if let Some(socket) = socket {
        args.extend(["--tailscale-socket".into(), socket.display().to_string()]);
    }
    if user {
        args.extend(["--headscale-user".into(), "alice".into()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_logged(&dir.join("data"), &args, Some(&dir.join("serve.log"))).unwrap()
}

/// `oshal ARGS…` (the CLI blocks; the fixture servers run on the other
/// worker meanwhile).
fn cli(server: &Server, args: &[&str]) -> Value {
    tokio::task::block_in_place(|| server.cli(args))
}

fn status(server: &Server) -> Value {
    cli(server, &["mesh", "status", "--json"])
}

fn node<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no node {name} in {view:#}"))
}

fn source<'a>(view: &'a Value, kind: &str) -> &'a Value {
    view["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} source in {view:#}"))
}

fn store_key(server: &Server, dir: &Path, key: &str) {
    let file = dir.join("headscale-key");
    std::fs::write(&file, format!("{key}\n")).unwrap();
    assert_eq!(
        cli(server, &["mesh", "key", file.to_str().unwrap()]),
        Value::Null
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mesh_is_read_merged_enrolled_into_and_its_policy_checked_before_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start().await.unwrap();
    let hs = Headscale::start(Release::V0_28).await.unwrap();
    let ts = Tailscaled::start().await.unwrap();
    let server = serve(dir.path(), &bao, Some(&hs.url), Some(&ts.socket), false);

    // No key yet: Headscale is said to lack one, never shown as healthy;
    // this host's view stands alone, each peer unknown to the control server.
    let view = status(&server);
    assert_eq!(source(&view, "headscale")["state"], "no_key");
    assert_eq!(source(&view, "tailscale")["state"], "ok");
    assert_eq!(hs.calls(), 0, "nothing is sent without a key");
    assert_eq!(
        node(&view, "n1")["disagreements"],
        json!([{"kind": "unknown_to_control"}])
    );

    store_key(&server, dir.path(), &hs.api_key);
    let view = status(&server);
    let headscale = source(&view, "headscale");
    assert_eq!(headscale["state"], "ok", "{view:#}");
    assert_eq!(headscale["version"], "0.28.0");
    assert_eq!(
        view["nodes"].as_array().unwrap().len(),
        4,
        "merged by node key"
    );
    let n1 = node(&view, "n1");
    assert_eq!(n1["status"], "online");
    assert_eq!(n1["local"]["path"]["kind"], "direct");
    assert_eq!(n1["tags"], json!(["tag:oshal-node"]));
    assert_eq!(n1["disagreements"], json!([]));
    assert_eq!(node(&view, "n2")["status"], "offline");
    assert_eq!(node(&view, "controller")["local"]["is_self"], true);
    assert_eq!(view["host_health"].as_array().unwrap().len(), 1);
    // Beside the mesh, the rest of the deployment: the edge (plain HTTP on
    // loopback here) and Vault as it says of itself.
    assert_eq!(view["edge"]["tls"], Value::Null);
    assert_eq!(
        view["edge"]["listen"],
        server.url.trim_start_matches("http://"),
        "{view:#}"
    );
    let secrets = &view["secrets"];
    assert_eq!(
        (&secrets["backend"], &secrets["state"], &secrets["at"]),
        (&json!("vault"), &json!("active"), &json!(bao.addr)),
        "{secrets:#}"
    );
    assert!(secrets["version"].as_str().is_some_and(|v| !v.is_empty()));
    // The policy as a matrix over the two services: the nodes reach both,
    // the controller's own host neither; alice's laptop both (group:ops).
    let matrix = &view["matrix"];
    let reach = |name: &str| -> Vec<bool> {
        let row = matrix["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["node"] == name)
            .unwrap();
        row["cells"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| !c["rule"].is_null())
            .collect()
    };
    assert_eq!(reach("n1"), [true, true]);
    assert_eq!(reach("controller"), [false, false]);
    assert_eq!(reach("laptop"), [true, true]);

    // The control server changes its mind about n2: the two views disagree,
    // and it is said.
    hs.set_online("n2", true);
    let view = status(&server);
    assert_eq!(
        node(&view, "n2")["disagreements"],
        json!([{"kind": "control_online_local_offline"}])
    );

    // Enrol a node: a single-use, tagged, expiring key, shown once, and the
    // commands that use it; the key never reaches the server's log.
    let enrolled = cli(&server, &["mesh", "enrol", "n3", "--expires-in-s", "600"]);
    let key = enrolled["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("hskey-auth-"), "{enrolled:#}");
    assert_eq!(enrolled["tags"], json!(["tag:oshal-node"]));
    let commands = enrolled["commands"].as_array().unwrap();
    assert!(
        commands[0]
            .as_str()
            .unwrap()
            .contains(&format!("--authkey='{key}'"))
    );
    assert!(
        commands[0]
            .as_str()
            .unwrap()
            .contains(&format!("--login-server='{}'", hs.url))
    );
    assert_eq!(
        commands[1],
        "oshal node --redis='redis://100.64.0.1:6379' --redis-prefix='oshal' --name=n3"
    );
    let minted = &hs.keys()[0];
    assert_eq!(minted["reusable"], false);
    assert_eq!(minted["aclTags"], json!(["tag:oshal-node"]));
    assert!(minted["user"].is_null(), "0.28: a tagged key needs no user");
    let view = status(&server);
    assert_eq!(view["keys"][0]["state"], "usable");
    hs.expire_keys();
    let view = status(&server);
    assert_eq!(view["keys"][0]["state"], "expired", "reported, not tried");
    assert!(serde_json::to_string(&view).unwrap().find(&key).is_none());

    // A policy change is checked against the live nodes: moving Redis's
    // port cuts both nodes off it.
    let next = oshal_mesh::fixtures::POLICY.replace("\"redis:6379\"", "\"redis:6380\"");
    let file = dir.path().join("policy.hujson");
    std::fs::write(&file, &next).unwrap();
    let check = cli(
        &server,
        &["mesh", "policy", "check", file.to_str().unwrap()],
    );
    assert_eq!(check["cuts"], 2, "{check:#}");
    assert_eq!(
        check["turned"],
        json!([
            {"node": "n1", "service": "redis", "now": false},
            {"node": "n2", "service": "redis", "now": false}
        ])
    );
    let refused = server
        .put("/api/v1/mesh/policy")
        .json(&json!({"policy": next}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["field"], "confirm");
    assert_eq!(hs.policy(), oshal_mesh::fixtures::POLICY, "nothing written");
    cli(
        &server,
        &["mesh", "policy", "set", file.to_str().unwrap(), "--confirm"],
    );
    assert_eq!(hs.policy(), next);
    // One that names a tag nobody owns is refused at its field, unwritten.
    let bad = server
        .post("/api/v1/mesh/policy/check")
        .json(&json!({"policy": r#"{"acls": [{"action": "accept", "src": ["tag:ghost"], "dst": ["*:*"]}]}"#}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"]["field"],
        "acls[0].src[0]"
    );

    // The API key revoked at the server: refused once, then not sent again.
    hs.revoke_api_key();
    let view = status(&server);
    assert_eq!(source(&view, "headscale")["state"], "unauthorized");
    let calls = hs.calls();
    let view = status(&server);
    assert_eq!(source(&view, "headscale")["state"], "unauthorized");
    assert_eq!(hs.calls(), calls, "a refused key is not sent again");
    assert_eq!(
        source(&view, "tailscale")["state"],
        "ok",
        "the other source still reads"
    );
    // Another key stored is sent again (this one is refused too).
    store_key(
        &server,
        dir.path(),
        "hskey-api-AAAAAAAAAAAA-wrongwrongwrong",
    );
    assert_eq!(
        source(&status(&server), "headscale")["state"],
        "unauthorized"
    );
    assert!(hs.calls() > calls, "a new key is tried");

    // A tenant's token never reaches the mesh.
    let issued = cli(
        &server,
        &["tokens", "create", "--tenant", "acme", "--role", "operator"],
    );
    let tenant = server
        .raw()
        .get(format!("{}/api/v1/mesh", server.url))
        .bearer_auth(issued["token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(tenant.status(), 403);

    // Vault sealed is drawn sealed, not healthy.
    let sealed = reqwest::Client::new()
        .put(format!("{}/v1/sys/seal", bao.addr))
        .header("X-Vault-Token", &bao.root_token)
        .send()
        .await
        .unwrap();
    assert!(sealed.status().is_success(), "{}", sealed.status());
    assert_eq!(status(&server)["secrets"]["state"], "sealed");

    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    for secret in [hs.api_key.as_str(), key.as_str()] {
        assert!(!log.contains(secret), "a key reached the log");
    }
}

/// With no policy stored, every node reaches every other today: the first
/// policy cuts whoever it leaves out, and needs a confirmation to be
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_policy_is_held_against_everything_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start().await.unwrap();
    let hs = Headscale::start(Release::V0_28).await.unwrap();
    hs.clear_policy();
    let server = serve(dir.path(), &bao, Some(&hs.url), None, false);
    store_key(&server, dir.path(), &hs.api_key);
    let view = status(&server);
    assert!(view["matrix"].is_null(), "no policy, no matrix: {view:#}");
    assert!(
        view["policy_refused"]["reason"]
            .as_str()
            .unwrap()
            .contains("policy not found")
    );
    let first = serde_json::json!({"policy": oshal_mesh::fixtures::POLICY});
    let check = server
        .post("/api/v1/mesh/policy/check")
        .json(&first)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(check["before"], "allow_all", "{check:#}");
    assert_eq!(
        check["cuts"], 1,
        "the controller's host reaches neither: {check:#}"
    );
    let r = server
        .put("/api/v1/mesh/policy")
        .json(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(hs.policy().is_empty(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_earlier_shapes_are_read_and_their_keys_minted_for_a_user() {
    let bao = OpenBao::start().await.unwrap();
    for (release, version) in [
        (Release::V0_26, "0.26 or earlier"),
        (Release::V0_27, "0.27.1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let hs = Headscale::start(release).await.unwrap();
        let server = serve(dir.path(), &bao, Some(&hs.url), None, true);
        store_key(&server, dir.path(), &hs.api_key);
        let view = status(&server);
        assert_eq!(source(&view, "headscale")["version"], version, "{view:#}");
        let n1 = node(&view, "n1");
        assert_eq!(n1["tags"], json!(["tag:oshal-node"]), "validTags");
        assert_eq!(n1["control"]["user"], "alice");
        assert_eq!(n1["local"], Value::Null);
        let enrolled = cli(&server, &["mesh", "enrol", "n3", "--tag", "tag:gpu"]);
        assert_eq!(
            enrolled["key"].as_str().unwrap().len(),
            48,
            "a 0.26/0.27 key"
        );
        assert_eq!(hs.keys()[0]["user"]["id"], "1", "minted for alice, by id");
        let view = status(&server);
        assert_eq!(
            view["keys"][0]["state"], "usable",
            "listed by user: {view:#}"
        );
        assert_eq!(view["keys"][0]["acl_tags"], json!(["tag:gpu"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_answer_is_refused_naming_the_field_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start().await.unwrap();
    let ts = Tailscaled::start().await.unwrap();
    ts.edit(|s| {
        s["Peer"][format!("nodekey:{}", "2".repeat(64))]["TailscaleIPs"] = json!(["100.64.0.300"]);
    });
    let server = serve(dir.path(), &bao, None, Some(&ts.socket), false);
    let view = status(&server);
    assert_eq!(source(&view, "tailscale")["state"], "ok");
    let refused = view["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{view:#}");
    assert!(
        refused[0]["path"]
            .as_str()
            .unwrap()
            .ends_with(".TailscaleIPs[0]")
    );
    assert!(
        view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "laptop")
    );
    // Garbage instead of a status: the source is malformed, the field named.
    ts.edit(|s| *s = json!({"Peer": {}}));
    let view = status(&server);
    let tailscale = source(&view, "tailscale");
    assert_eq!(tailscale["state"], "malformed");
    assert!(
        tailscale["message"]
            .as_str()
            .unwrap()
            .contains("BackendState")
    );
    // Enrolment without a Headscale is refused, saying what is missing.
    let r = server
        .post("/api/v1/mesh/enrol")
        .json(&json!({"name": "n3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("--headscale-url"));
    let r = server
        .post("/api/v1/mesh/enrol")
        .json(&json!({"name": "Not A Host"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["field"], "name");
}

/// Against a real Headscale and a real tailscaled, where the machine has
/// them: `HEADSCALE_URL=… HEADSCALE_API_KEY=… TAILSCALE_SOCKET=… cargo
/// nextest run -p oshal-e2e --run-ignored all -E 'test(/real_daemons/)'`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real Headscale (HEADSCALE_URL, HEADSCALE_API_KEY) or tailscaled (TAILSCALE_SOCKET)"]
async fn the_real_daemons_are_read_where_they_run() {
    let real_hs = std::env::var("HEADSCALE_URL")
        .ok()
        .zip(std::env::var("HEADSCALE_API_KEY").ok());
    let real_ts = std::env::var("TAILSCALE_SOCKET").ok();
    assert!(
        real_hs.is_some() || real_ts.is_some(),
        "set HEADSCALE_URL and HEADSCALE_API_KEY, or TAILSCALE_SOCKET"
    );
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start().await.unwrap();
    let server = serve(
        dir.path(),
        &bao,
        real_hs.as_ref().map(|(url, _)| url.as_str()),
        real_ts.as_deref().map(Path::new),
        false,
    );
    if let Some((_, key)) = &real_hs {
        store_key(&server, dir.path(), key);
    }
    let view = status(&server);
    for s in view["sources"].as_array().unwrap() {
        assert_eq!(s["state"], "ok", "{s:#}");
    }
    assert!(view["refused"].as_array().unwrap().is_empty(), "{view:#}");
}

/// The topology's mesh in a real browser (`ui/tests/mesh.mjs`): the sources,
/// each host's state, path, handshake and reach, a disagreement named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_draws_the_mesh_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let bao = OpenBao::start().await.unwrap();
    let hs = Headscale::start(Release::V0_28).await.unwrap();
    let ts = Tailscaled::start().await.unwrap();
    ts.edit(|s| {
        s["Peer"]
            .as_object_mut()
            .unwrap()
            .remove(&format!("nodekey:{}", "4".repeat(64)));
    });
    let engine = oshal_e2e::engine::Engine::start().unwrap();
    let image = engine.busybox_image().unwrap();
    engine.run_healthy("web", &image, &[]).unwrap();
    let server = serve_with(
        dir.path(),
        &bao,
        Some(&hs.url),
        Some(&ts.socket),
        false,
        &["--containers-socket", engine.socket.to_str().unwrap()],
    );
    store_key(&server, dir.path(), &hs.api_key);
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui");
    let out = tokio::task::block_in_place(|| {
        std::process::Command::new("node")
            .arg(ui.join("tests/mesh.mjs"))
            .arg(&server.url)
            .arg(&server.token)
            .current_dir(&ui)
            .output()
            .unwrap()
    });
    assert!(
        out.status.success(),
        "mesh.mjs: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The deployment's containers as a real engine reports them (Podman's
/// Docker-compatible API on a unix socket): image, state, health, restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_containers_are_read_from_a_real_engine() {
    let engine = oshal_e2e::engine::Engine::start().unwrap();
    let image = engine.busybox_image().unwrap();
    engine
        .run_healthy(
            "web",
            &image,
            &[
                "com.docker.compose.project=oshal",
                "com.docker.compose.service=node",
            ],
        )
        .unwrap();
    engine
        .run(&[
            "run",
            "-d",
            "--name",
            "flappy",
            "--restart",
            "always",
            &image,
            "sh",
            "-c",
            "sleep 0.2; exit 1",
        ])
        .unwrap();
    engine
        .run(&["create", "--name", "idle", &image, "true"])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--containers-socket", engine.socket.to_str().unwrap()],
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let view = server.json("/api/v1/mesh").await.unwrap();
        assert_eq!(source(&view, "containers")["state"], "ok", "{view:#}");
        let by = |name: &str| {
            view["containers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no container {name}: {view:#}"))
        };
        let (web, flappy, idle) = (by("web"), by("flappy"), by("idle"));
        assert_eq!(web["state"], "running");
        assert_eq!(web["health"], "healthy");
        assert_eq!(web["image"], image);
        assert_eq!(web["service"], "node");
        assert_eq!(web["restarts"], 0);
        assert_eq!(idle["state"], "created");
        assert!(idle["health"].is_null(), "no health check, no health");
        if flappy["restarts"].as_u64().unwrap() >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "flappy never restarted: {flappy:#}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
