//! Where the steps that work on files keep them: an [`ArtifactStore`],
//! one [`Space`] per tenant, outputs by content hash; and how such a step
//! runs a tool: no shell, an empty environment but `PATH`, stderr drained
//! as it writes ([`Running`]). `media` and `build` steps share it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::ticket::TicketId;

/// The most of a tool's stderr kept for an error message.
const MAX_STDERR: usize = 64 * 1024;

/// An artifact root: one space per tenant, `<root>/<tenant>/`, each with
/// `inbox/` (where files to ingest or check out are put), `artifacts/`
/// (outputs by content hash), `published/` and `tmp/`. A step works in its ticket's
/// tenant's space alone: another tenant's files and artifacts are not
/// there to name.
#[derive(Debug)]
pub struct ArtifactStore {
    root: PathBuf,
    scratch: Arc<AtomicU64>,
}

impl ArtifactStore {
    /// The store at `root` (made absolute: the concat demuxer reads its
    /// list's paths from `tmp/`, a sandbox is given paths); its
    /// directories are made when first needed.
    pub fn new(root: impl Into<PathBuf>) -> Arc<Self> {
        let root = root.into();
        Arc::new(Self {
            root: std::path::absolute(&root).unwrap_or(root),
            scratch: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `tenant`'s space (a tenant id is a plain name: no separator).
    pub fn space(&self, tenant: &crate::ticket::TenantId) -> Space {
        Space {
            root: self.root.join(tenant.as_str()),
            scratch: self.scratch.clone(),
        }
    }
}

/// One tenant's part of a [`ArtifactStore`].
#[derive(Debug, Clone)]
pub struct Space {
    root: PathBuf,
    scratch: Arc<AtomicU64>,
}

impl Space {
    pub fn inbox(&self) -> PathBuf {
        self.root.join("inbox")
    }

    pub fn published(&self) -> PathBuf {
        self.root.join("published")
    }

    /// Where an artifact's bytes are: `artifacts/<hex>`. `id` is checked
    /// at the edge (`sha256:` and 64 lowercase hex digits).
    pub fn artifact(&self, id: &str) -> PathBuf {
        self.root
            .join("artifacts")
            .join(id.strip_prefix("sha256:").unwrap_or(id))
    }

    /// A fresh file name in `tmp/`.
    pub(super) fn scratch(&self, ticket: TicketId, attempt: u32, ext: &str) -> PathBuf {
        let n = self.scratch.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!(
            "{ticket}-{attempt}-{}-{n}.{ext}",
            std::process::id()
        ))
    }

    /// Moves a whole file from `tmp/` into the store under its hash.
    pub(super) async fn keep(&self, tmp: &Path) -> Result<(String, u64), Failure> {
        let path = tmp.to_owned();
        let (hex, bytes) = tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .map_err(|e| Failure::retry(format!("hashing stopped: {e}")))?
            .map_err(|e| Failure::retry(format!("cannot read the output: {e}")))?;
        let id = format!("sha256:{hex}");
        let to = self.artifact(&id);
        make_dir(to.parent().expect("artifacts/ has a parent")).await?;
        tokio::fs::rename(tmp, &to)
            .await
            .map_err(|e| Failure::retry(format!("cannot store the artifact: {e}")))?;
        Ok((id, bytes))
    }

    /// Takes `name` from `inbox/` into the store (through `tmp`, a file
    /// in `tmp/`): its artifact id and size. Only a plain file is taken:
    /// a link could name what is not the tenant's.
    pub(super) async fn take_in(&self, name: &str, tmp: &Path) -> Result<(String, u64), Failure> {
        let from = self.inbox().join(name);
        if !tokio::fs::symlink_metadata(&from)
            .await
            .is_ok_and(|m| m.is_file())
        {
            return Err(Failure::fail(format!(
                "no file {name:?} in {} (a link is not taken)",
                self.inbox().display()
            )));
        }
        tokio::fs::copy(&from, tmp)
            .await
            .map_err(|e| Failure::retry(format!("cannot copy {name:?}: {e}")))?;
        self.keep(tmp).await
    }

    /// The path of an artifact that must be there.
    pub(super) async fn existing(&self, id: &str) -> Result<PathBuf, Failure> {
        let path = self.artifact(id);
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(path),
            _ => Err(Failure::fail(format!(
                "artifact {id} is not in the artifact store at {}",
                self.root.display()
            ))),
        }
    }
}

pub(super) fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, bytes))
}

pub(super) async fn make_dir(dir: &Path) -> Result<(), Failure> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| Failure::retry(format!("cannot make {}: {e}", dir.display())))
}

/// Why a step did not succeed.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) error: String,
    pub(super) retryable: bool,
}

impl Failure {
    pub(super) fn fail(error: String) -> Self {
        Self {
            error,
            retryable: false,
        }
    }

    pub(super) fn retry(error: String) -> Self {
        Self {
            error,
            retryable: true,
        }
    }
}

/// How a step ended short of an answer.
pub(super) enum Stop {
    Failed(Failure),
    Cancelled,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Failed(f)
    }
}

/// A tool that runs, with its stderr drained as it writes (the last
/// [`MAX_STDERR`] bytes kept), so a chatty tool never blocks on its pipe.
pub(super) struct Running {
    pub(super) child: tokio::process::Child,
    stderr: tokio::task::JoinHandle<Vec<u8>>,
}

/// `program` with `args`, with an empty environment but `PATH`, its stdin
/// closed and its output piped; killed if dropped (a cancel, a timeout, a
/// bot shutting down).
pub(super) fn command(program: &str, args: Vec<OsString>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd
}

/// Why `program` did not start; `package` is the Debian package it is in.
pub(super) fn not_started(program: &str, package: &str, e: std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::NotFound => Failure::fail(format!(
            "{program} is not installed on this bot's host (on Debian or Ubuntu: apt install {package})"
        )),
        _ => Failure::retry(format!("cannot start {program}: {e}")),
    }
}

/// `program` started as [`command`] makes it.
pub(super) fn spawn(program: &str, package: &str, args: Vec<OsString>) -> Result<Running, Failure> {
    let child = command(program, args)
        .spawn()
        .map_err(|e| not_started(program, package, e))?;
    Ok(Running::attach(child))
}

impl Running {
    /// Drains `child`'s stderr as it writes.
    pub(super) fn attach(mut child: tokio::process::Child) -> Self {
        let mut pipe = child.stderr.take().expect("piped");
        let stderr = tokio::spawn(async move {
            let mut kept = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * MAX_STDERR {
                    kept.drain(..kept.len() - MAX_STDERR);
                }
            }
            kept
        });
        Running { child, stderr }
    }

    /// Waits for the tool to exit; its stderr if it succeeded, else why not.
    pub(super) async fn finished(&mut self, program: &str) -> Result<String, Failure> {
        let (status, stderr) = self.exited(program).await?;
        if status.success() {
            return Ok(stderr);
        }
        let said = crate::text::clip(stderr.trim(), 2048);
        match status.code() {
            Some(code) => Err(Failure::fail(format!(
                "{program} exited with {code}: {said}"
            ))),
            // Killed by a signal (out of memory, an operator): worth another go.
            None => Err(Failure::retry(format!("{program} was killed: {said}"))),
        }
    }

    /// Waits for the tool to exit: how it ended and its stderr.
    pub(super) async fn exited(
        &mut self,
        program: &str,
    ) -> Result<(std::process::ExitStatus, String), Failure> {
        let status = self
            .child
            .wait()
            .await
            .map_err(|e| Failure::retry(format!("lost {program}: {e}")))?;
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        Ok((status, String::from_utf8_lossy(&stderr).into_owned()))
    }
}
