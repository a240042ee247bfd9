//! A `build` ticket: one step of a software build (checkout, compile, test,
//! deploy) on files kept by content hash in the ticket's tenant's space of
//! the bot's [`ArtifactStore`](super::artifacts::ArtifactStore).
//!
//! `compile` runs the system's C compiler (`cc`) and `test` runs what it
//! made, each in its own directory under `tmp/` and in the [`sandbox`]:
//! nothing outside that directory and the system's is read, nothing is
//! reached over TCP. Their arguments are built from the payload's typed
//! fields alone (a target names a fixed set of flags); the sources are
//! named by hash. An output enters `artifacts/` only once whole, and a
//! step's directory goes with it however it ends. A compile is
//! reproducible (paths are mapped out of the binary), so the same sources
//! give the same artifact. The result is JSON; no model is called, so a
//! step costs nothing in the ledger.

pub mod sandbox;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::artifacts::{Failure, Space, Stop, make_dir};
use super::{BotContext, Outcome};
use crate::cost::Usage;
use crate::ticket::{BuildPayload, BuildTarget, SourceFile, TenantId, TicketId};
use sandbox::Limits;

/// The longest a compile runs, and what it may use.
const COMPILE_WALL: Duration = Duration::from_secs(5 * 60);
const COMPILE: Limits = Limits {
    cpu_seconds: 300,
    memory_bytes: 4 << 30,
    file_bytes: 256 << 20,
};
/// The longest a test's program runs, and what it may use.
const TEST_WALL: Duration = Duration::from_secs(60);
const TEST: Limits = Limits {
    cpu_seconds: 30,
    memory_bytes: 1 << 30,
    file_bytes: 64 << 20,
};
/// The most of a test's stdout kept (the rest is read and dropped).
const MAX_STDOUT: usize = 64 * 1024;
/// The most of a compiler's warnings or a test's output in an answer.
const MAX_SHOWN: usize = 4096;

/// Runs one `build` ticket.
pub(super) async fn run(
    cx: &BotContext,
    payload: &BuildPayload,
    (tenant, ticket, attempt): (&TenantId, TicketId, u32),
    cancel: &CancellationToken,
) -> Outcome {
    let Some(store) = cx.spec.artifacts.clone() else {
        return Outcome::Failed {
            error: format!(
                "bot {} has no artifact root; build tickets run where one is configured (oshal node --artifact-root)",
                cx.spec.id
            ),
            retryable: false,
        };
    };
    let mut step = Step {
        space: store.space(tenant),
        ticket,
        attempt,
        dir: None,
    };
    let answer = tokio::select! {
        _ = cancel.cancelled() => Err(Stop::Cancelled),
        answer = step.run(payload) => answer,
    };
    match answer {
        Ok(value) => Outcome::Succeeded {
            text: value.to_string(),
            usage: Usage::default(),
            reported_model: None,
            cut: false,
        },
        Err(Stop::Cancelled) => Outcome::Cancelled,
        Err(Stop::Failed(f)) => Outcome::Failed {
            error: format!("build {}: {}", payload.op(), f.error),
            retryable: f.retryable,
        },
    }
}

/// One step in progress, with the directory it works in.
struct Step {
    space: Space,
    ticket: TicketId,
    attempt: u32,
    dir: Option<PathBuf>,
}

/// The step's directory goes with it, however it ended (a kept output was
/// moved out already), removed off the runtime's threads.
impl Drop for Step {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let remove = move || {
                let _ = std::fs::remove_dir_all(dir);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn_blocking(remove)),
                Err(_) => remove(),
            }
        }
    }
}

impl Step {
    /// The step's own directory under `tmp/`, made empty.
    async fn dir(&mut self) -> Result<PathBuf, Failure> {
        let dir = self.space.scratch(self.ticket, self.attempt, "d");
        make_dir(&dir).await?;
        self.dir = Some(dir.clone());
        Ok(dir)
    }

    async fn run(&mut self, payload: &BuildPayload) -> Result<Value, Stop> {
        match payload {
            BuildPayload::Checkout { files } => self.checkout(files).await,
            BuildPayload::Compile {
                files,
                target,
                output,
            } => self.compile(files, *target, output).await,
            BuildPayload::Test {
                input,
                args,
                expect,
            } => self.test(input, args, expect.as_deref()).await,
            BuildPayload::Deploy {
                input,
                environment,
                name,
                dry_run: true,
            } => {
                self.space.existing(input).await?;
                let would = format!("published/{environment}/{name}");
                Ok(json!({ "artifact": input, "path": null, "dry_run": { "would_deploy": would } }))
            }
            BuildPayload::Deploy {
                input,
                environment,
                name,
                ..
            } => self.deploy(input, environment, name).await,
        }
    }

    async fn checkout(&mut self, files: &[String]) -> Result<Value, Stop> {
        let dir = self.dir().await?;
        let mut listed = Vec::with_capacity(files.len());
        let mut tree = Sha256::new();
        let mut total = 0u64;
        for name in files {
            let (artifact, bytes) = self.space.take_in(name, &dir.join(name)).await?;
            tree.update(format!("{name}\0{artifact}\n"));
            total += bytes;
            listed.push(json!({ "name": name, "artifact": artifact }));
        }
        let tree: String = tree.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok(json!({ "files": listed, "bytes": total, "tree": format!("sha256:{tree}") }))
    }

    async fn compile(
        &mut self,
        files: &[SourceFile],
        target: BuildTarget,
        output: &str,
    ) -> Result<Value, Stop> {
        let dir = self.dir().await?;
        for f in files {
            let from = self.space.existing(&f.artifact).await?;
            tokio::fs::copy(&from, dir.join(&f.name))
                .await
                .map_err(|e| Failure::retry(format!("cannot copy {:?}: {e}", f.name)))?;
        }
        let sources: Vec<&str> = files
            .iter()
            .map(|f| f.name.as_str())
            .filter(|n| n.ends_with(".c"))
            .collect();
        let args = cc_args(&dir, target, &sources, output);
        let mut cc = sandbox::spawn("cc", args, &dir, COMPILE).await?;
        let warnings = match tokio::time::timeout(COMPILE_WALL, cc.running.finished("cc")).await {
            Err(_) => return Err(Failure::fail(walled("cc", COMPILE_WALL)).into()),
            // Errors in the sources are the sources', not the bot's.
            Ok(Err(f)) => return Err(f.into()),
            Ok(Ok(stderr)) => stderr,
        };
        drop(cc);
        let (artifact, bytes) = self.space.keep(&dir.join(output)).await?;
        // Fixed arguments, no tenant input: asked outside the box.
        let machine = compiler_says("-dumpmachine").await?;
        let version = compiler_says("-dumpversion").await?;
        Ok(json!({
            "artifact": artifact,
            "bytes": bytes,
            "target": target.as_str(),
            "machine": machine,
            "compiler": format!("cc {version}"),
            "warnings": crate::text::clip(warnings.trim(), MAX_SHOWN),
        }))
    }

    async fn test(
        &mut self,
        input: &str,
        args: &[String],
        expect: Option<&str>,
    ) -> Result<Value, Stop> {
        let from = self.space.existing(input).await?;
        let dir = self.dir().await?;
        let program = dir.join("program");
        tokio::fs::copy(&from, &program)
            .await
            .map_err(|e| Failure::retry(format!("cannot copy the program: {e}")))?;
        set_executable(&program).await?;
        let args = args.iter().map(OsString::from).collect();
        let began = Instant::now();
        let mut boxed = sandbox::spawn("./program", args, &dir, TEST).await?;
        let mut stdout = boxed.running.child.stdout.take().expect("piped");
        let ran = async {
            let out = drain(&mut stdout).await;
            let (status, stderr) = boxed.running.exited("the program").await?;
            Ok::<_, Failure>((status, out, stderr))
        };
        let (status, out, stderr) = tokio::time::timeout(TEST_WALL, ran)
            .await
            .map_err(|_| Failure::fail(walled("the program", TEST_WALL)))??;
        let ms = began.elapsed().as_millis() as u64;
        let printed = String::from_utf8_lossy(&out).into_owned();
        let shown = crate::text::clip(&printed, MAX_SHOWN);
        let Some(code) = status.code() else {
            return Err(Failure::fail(format!(
                "the program was killed ({status}; its CPU time is limited to {} s, its memory to {} MiB): {}",
                TEST.cpu_seconds,
                TEST.memory_bytes >> 20,
                crate::text::clip(stderr.trim(), 1024)
            ))
            .into());
        };
        if code != 0 {
            return Err(Failure::fail(format!(
                "the program exited with {code}: {}",
                crate::text::clip(format!("{shown}{}", stderr.trim()).trim(), 2048)
            ))
            .into());
        }
        if let Some(want) = expect.filter(|e| !e.is_empty())
            && !printed.contains(want)
        {
            return Err(Failure::fail(format!(
                "the program did not print {:?}; it printed {:?}",
                crate::text::clip(want, 200),
                crate::text::clip(&printed, 1024)
            ))
            .into());
        }
        Ok(json!({ "passed": true, "exit_code": code, "stdout": shown, "ms": ms }))
    }

    async fn deploy(&mut self, input: &str, environment: &str, name: &str) -> Result<Value, Stop> {
        let from = self.space.existing(input).await?;
        let to = self.space.published().join(environment);
        make_dir(&to).await?;
        let dir = self.dir().await?;
        let tmp = dir.join(name);
        tokio::fs::copy(&from, &tmp)
            .await
            .map_err(|e| Failure::retry(format!("cannot copy into published/: {e}")))?;
        set_executable(&tmp).await?;
        tokio::fs::rename(&tmp, to.join(name))
            .await
            .map_err(|e| Failure::retry(format!("cannot deploy {name:?}: {e}")))?;
        Ok(json!({ "artifact": input, "path": format!("published/{environment}/{name}") }))
    }
}

/// The compiler's arguments for `target`: the target's flags, warnings,
/// paths mapped out of the binary (so it is reproducible), the sources.
fn cc_args(dir: &Path, target: BuildTarget, sources: &[&str], output: &str) -> Vec<OsString> {
    let flags: &[&str] = match target {
        BuildTarget::Debug => &["-O0", "-g"],
        BuildTarget::Release => &["-O2", "-DNDEBUG"],
        BuildTarget::Size => &["-Os", "-DNDEBUG", "-s"],
        BuildTarget::Hardened => &[
            "-O2",
            "-DNDEBUG",
            "-D_FORTIFY_SOURCE=2",
            "-fstack-protector-strong",
            "-fPIE",
            "-pie",
            "-Wl,-z,relro,-z,now",
        ],
    };
    let mut a: Vec<OsString> = [
        "-std=gnu17",
        "-Wall",
        "-Wextra",
        "-fdiagnostics-color=never",
    ]
    .into_iter()
    .chain(flags.iter().copied())
    .map(OsString::from)
    .collect();
    let mut map = OsString::from("-ffile-prefix-map=");
    map.push(dir.as_os_str());
    map.push("=.");
    a.push(map);
    a.extend(["-o", output].map(OsString::from));
    // `./`: a source named `-x.c` is a file, never an option.
    a.extend(sources.iter().map(|s| OsString::from(format!("./{s}"))));
    a.push("-lm".into());
    a
}

/// What the compiler prints of itself for `flag` (its machine, its version).
async fn compiler_says(flag: &str) -> Result<String, Failure> {
    let mut cc = super::artifacts::spawn("cc", "gcc", vec![flag.into()])?;
    let mut out = String::new();
    if let Some(mut stdout) = cc.child.stdout.take() {
        let _ = (&mut stdout).take(256).read_to_string(&mut out).await;
    }
    cc.finished("cc").await?;
    Ok(out.trim().to_owned())
}

/// Reads all of `pipe`, keeping the first [`MAX_STDOUT`] bytes.
async fn drain(pipe: &mut tokio::process::ChildStdout) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = MAX_STDOUT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

async fn set_executable(path: &Path) -> Result<(), Failure> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
            .await
            .map_err(|e| {
                Failure::retry(format!("cannot make {} executable: {e}", path.display()))
            })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn walled(program: &str, wall: Duration) -> String {
    format!(
        "{program} ran longer than {} s and was stopped",
        wall.as_secs()
    )
}
