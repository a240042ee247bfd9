//! The build pipeline on real C sources: compiled by the system's compiler
//! for four targets, each build run as its test, deployed after approval;
//! and the sandbox every compile and test runs in, tried from the inside.

use std::path::Path;

use serde_json::{Value, json};

use super::*;

const BUILD: &str = include_str!("../../../../../assets/workflows/build.yaml");

/// `inbox/main.c` and `inbox/greet.h`: a program that prints a greeting
/// and the number of its arguments.
fn sources(space: &Space) {
    std::fs::create_dir_all(space.inbox()).unwrap();
    std::fs::write(
        space.inbox().join("greet.h"),
        "static const char *greeting(void) { return \"hello from oshal\"; }\n",
    )
    .unwrap();
    std::fs::write(
        space.inbox().join("main.c"),
        "#include <stdio.h>\n#include \"greet.h\"\nint main(int argc, char **argv) {\n  (void)argv;\n  printf(\"%s (%d)\\n\", greeting(), argc - 1);\n  return 0;\n}\n",
    )
    .unwrap();
}

fn run_of(inputs: Value, dry_run: bool) -> NewRun {
    NewRun {
        spec: json!(BUILD),
        inputs: super::inputs(inputs),
        tenant: None,
        definition: None,
        version: None,
        dry_run,
    }
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// What a `build` ticket answered, or why it failed.
async fn step(controller: &Controller, payload: Value) -> Result<Value, String> {
    let v = super::ended_of(controller, "build", payload).await;
    match v.result {
        Some(r) if v.state == crate::ticket::TicketState::Succeeded => {
            Ok(serde_json::from_str(r["text"].as_str().unwrap()).unwrap())
        }
        _ => Err(v.error.unwrap_or_default()),
    }
}

#[tokio::test]
async fn the_build_pipeline_compiles_four_targets_tests_each_and_deploys_after_approval() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, workflows, space) = open(dir.path()).await;
    sources(&space);
    let inputs = json!({
        "files": ["main.c", "greet.h"],
        "program": "hello",
        "expect": "hello from oshal (0)",
    });
    let v = workflows
        .start_run(run_of(inputs.clone(), false), "operator")
        .await
        .unwrap();
    let id = v.summary.id.clone();
    let at_gate = until(&workflows, &id, "the approval", |v| {
        waiting_on(v, "approve") || v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(at_gate.summary.state, RunState::Running, "{at_gate:#?}");
    let compiled: Vec<Value> = node(&at_gate, "compile")
        .units
        .iter()
        .map(|u| u.output.clone().unwrap())
        .collect();
    let targets: Vec<&str> = compiled
        .iter()
        .map(|c| c["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["release", "debug", "size", "hardened"]);
    let artifacts: std::collections::BTreeSet<&str> = compiled
        .iter()
        .map(|c| c["artifact"].as_str().unwrap())
        .collect();
    assert_eq!(artifacts.len(), 4, "each target is its own binary");
    assert!(compiled[0]["machine"].as_str().unwrap().contains("linux"));
    let tests = node(&at_gate, "test");
    assert_eq!(tests.units.len(), 4);
    for u in &tests.units {
        let out = u.output.as_ref().unwrap();
        assert_eq!(
            (out["passed"].as_bool(), out["stdout"].as_str()),
            (Some(true), Some("hello from oshal (0)\n")),
            "{u:#?}"
        );
    }
    let deployed = space.published().join("staging").join("hello");
    assert!(!deployed.exists(), "nothing is deployed before approval");

    approve(&workflows, &id, "approve", json!({"note": "ship it"})).await;
    let done = until(&workflows, &id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{done:#?}");
    // The release build, by its hash, is what runs in the environment.
    assert_eq!(sha256(&deployed), compiled[0]["artifact"].as_str().unwrap());
    let ran = std::process::Command::new(&deployed)
        .args(["a", "b"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout),
        "hello from oshal (2)\n"
    );
    assert_eq!(done.summary.cost_nusd, 0, "a build calls no model");
    // The deploy took its place in the branch's concurrency group.
    let history = workflows.history(&id, None).await.unwrap();
    assert!(
        history.iter().any(|e| e.event == "group_admitted"),
        "{history:#?}"
    );

    // The same sources again, as a dry run: every build is the memo's, the
    // tests too, and the deploy says where it would go and writes nothing.
    std::fs::remove_file(&deployed).unwrap();
    let again = workflows
        .start_run(run_of(inputs, true), "operator")
        .await
        .unwrap();
    let second = until(&workflows, &again.summary.id, "the approval", |v| {
        waiting_on(v, "approve") || v.summary.state != RunState::Running
    })
    .await;
    let c = node(&second, "compile");
    assert!(
        c.units.iter().all(|u| u.memoized && u.tickets.is_empty()),
        "{c:#?}"
    );
    approve(&workflows, &again.summary.id, "approve", json!({})).await;
    let done = until(&workflows, &again.summary.id, "an end", |v| {
        v.summary.state != RunState::Running
    })
    .await;
    assert_eq!(done.summary.state, RunState::Succeeded, "{done:#?}");
    let deploy = node(&done, "deploy").units[0].output.clone().unwrap();
    assert_eq!(
        deploy["dry_run"]["would_deploy"], "published/staging/hello",
        "{deploy}"
    );
    assert!(!deployed.exists(), "a dry run deploys nothing");

    // Outside the memo, the same sources compile to the same bytes.
    let files = node(&done, "checkout").units[0].output.clone().unwrap()["files"].clone();
    let payload = json!({"op": "compile", "files": files, "target": "release", "output": "hello"});
    let first = step(&controller, payload.clone()).await.unwrap();
    let second = step(&controller, payload).await.unwrap();
    assert_eq!(first["artifact"], compiled[0]["artifact"]);
    assert_eq!(second["artifact"], first["artifact"], "reproducible");
    workflows.shutdown();
    controller.shutdown().await;
}

/// Checks out `name` holding `text`; the files a compile takes.
async fn checked_out(controller: &Controller, space: &Space, name: &str, text: &str) -> Value {
    std::fs::create_dir_all(space.inbox()).unwrap();
    std::fs::write(space.inbox().join(name), text).unwrap();
    step(controller, json!({"op": "checkout", "files": [name]}))
        .await
        .unwrap()["files"]
        .clone()
}

async fn compiled(controller: &Controller, files: Value) -> Result<Value, String> {
    step(
        controller,
        json!({"op": "compile", "files": files, "target": "debug", "output": "p"}),
    )
    .await
}

#[tokio::test]
async fn a_build_reads_no_file_outside_its_box_and_reaches_nothing_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let (controller, workflows, space) = open(dir.path()).await;
    // A secret of the host's, outside the artifact root.
    let secret = dir.path().join("host-secret.txt");
    std::fs::write(&secret, "s3cret\n").unwrap();

    // A link in the inbox is not followed out of it.
    std::fs::create_dir_all(space.inbox()).unwrap();
    std::os::unix::fs::symlink(&secret, space.inbox().join("link.c")).unwrap();
    let e = step(&controller, json!({"op": "checkout", "files": ["link.c"]}))
        .await
        .unwrap_err();
    assert!(e.contains("a link is not taken"), "{e}");

    // The compiler cannot include it, as text or as bytes.
    let files = checked_out(
        &controller,
        &space,
        "inc.c",
        &format!(
            "#include \"{}\"\nint main(void) {{ return 0; }}\n",
            secret.display()
        ),
    )
    .await;
    let e = compiled(&controller, files).await.unwrap_err();
    assert!(e.contains("Permission denied"), "{e}");
    let files = checked_out(
        &controller,
        &space,
        "bin.c",
        &format!(
            "__asm__(\".section .rodata\\n.incbin \\\"{}\\\"\\n.text\");\nint main(void) {{ return 0; }}\n",
            secret.display()
        ),
    )
    .await;
    let e = compiled(&controller, files).await.unwrap_err();
    // (The assembler says a file it may not open is not found.)
    assert!(
        e.contains(&format!("file not found: {}", secret.display())),
        "{e}"
    );

    // The program a test runs reads nothing outside its directory,
    // connects to nothing, even on loopback (PostgreSQL listens there),
    // makes no UNIX socket (a D-Bus or database socket is one) and
    // signals nothing outside its box (the bot is its parent).
    let probe = format!(
        r#"#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>
int main(void) {{
  FILE *f = fopen("{}", "r");
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a; memset(&a, 0, sizeof a);
  a.sin_family = AF_INET; a.sin_port = htons(5432); a.sin_addr.s_addr = htonl(0x7f000001);
  int c = connect(s, (struct sockaddr *)&a, sizeof a);
  int u = socket(AF_UNIX, SOCK_STREAM, 0);
  int k = kill(getppid(), 0);
  FILE *mine = fopen("scratch.txt", "w");
  printf("read=%s connect=%s unix=%s signal=%s write=%s\n", f ? "yes" : "no", c == 0 ? "yes" : "no",
         u >= 0 ? "yes" : "no", k == 0 ? "yes" : "no", mine ? "yes" : "no");
  return 0;
}}
"#,
        secret.display()
    );
    let files = checked_out(&controller, &space, "probe.c", &probe).await;
    let program = compiled(&controller, files).await.unwrap()["artifact"].clone();
    let out = step(&controller, json!({"op": "test", "input": program}))
        .await
        .unwrap();
    assert_eq!(
        out["stdout"], "read=no connect=no unix=no signal=no write=yes\n",
        "only its own directory: {out}"
    );

    // A compile error is the sources' and is not tried again; a failing
    // program is a failed test, with what it printed.
    let files = checked_out(
        &controller,
        &space,
        "bad.c",
        "int main(void) { return x; }\n",
    )
    .await;
    let e = compiled(&controller, files).await.unwrap_err();
    assert!(
        e.starts_with("build compile: cc exited with 1") && e.contains("'x' undeclared"),
        "{e}"
    );
    let files = checked_out(
        &controller,
        &space,
        "three.c",
        "#include <stdio.h>\nint main(void) { puts(\"no\"); return 3; }\n",
    )
    .await;
    let program = compiled(&controller, files).await.unwrap()["artifact"].clone();
    let e = step(
        &controller,
        json!({"op": "test", "input": program, "expect": "yes"}),
    )
    .await
    .unwrap_err();
    assert!(e.contains("the program exited with 3: no"), "{e}");
    // Nothing of any step is left in tmp/.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("artifacts/default/tmp"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
    workflows.shutdown();
    controller.shutdown().await;
}
