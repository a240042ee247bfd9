//! The box a build step's process runs in (the compiler, a test's
//! program). On Linux:
//!
//! - **Landlock** confines it to reading and executing the system's
//!   directories (`/usr`, `/lib*`, `/etc/ld.so.*`) and to its own step
//!   directory, read and write; every other file is refused, and so is
//!   every TCP bind and connect, every signal to a process outside the box
//!   and every abstract UNIX socket made outside it (and, as always under
//!   Landlock, ptrace of what is outside).
//! - **seccomp** refuses to make a UNIX socket (Landlock does not cover
//!   connecting to a named one, such as a D-Bus or database socket).
//! - A Landlock domain and a seccomp filter belong to the thread that
//!   asked for them and to what that thread starts, and are never lifted,
//!   so each process is started from a thread of its own that ends after.
//! - **Limits** (`prlimit`, util-linux) bound its CPU time, memory and the
//!   size of a file it writes.
//! - It leads a **process group** of its own, killed whole when the step
//!   ends or is dropped (a cancel, a timeout, the bot shutting down).
//!
//! A host that cannot enforce all of it (another OS, a kernel before 6.12
//! or without Landlock) refuses to build: deny by default. What it does not
//! stop, and so what a tenant's program may still do: send UDP, use the CPU
//! up to its limit per process, write files up to its limit in its own
//! directory, and start a process that leaves its group (`setsid`) and so
//! outlives the step's kill (a cgroup would hold those; not yet here).

use std::ffi::OsString;
use std::path::Path;

use super::super::artifacts::{self, Failure, Running};

/// What one sandboxed process may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub cpu_seconds: u64,
    pub memory_bytes: u64,
    pub file_bytes: u64,
}

/// The system's directories a sandboxed process reads and executes (those
/// that exist on the host).
#[cfg(target_os = "linux")]
const SYSTEM: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/bin",
    "/sbin",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
];

/// Starts `program` with `args` in `dir`, boxed; its group is killed when
/// the answer is dropped.
pub(super) async fn spawn(
    program: &str,
    args: Vec<OsString>,
    dir: &Path,
    limits: Limits,
) -> Result<Boxed, Failure> {
    let mut with_limits: Vec<OsString> = vec![
        format!("--cpu={0}:{0}", limits.cpu_seconds).into(),
        format!("--as={0}:{0}", limits.memory_bytes).into(),
        format!("--fsize={0}:{0}", limits.file_bytes).into(),
        "--".into(),
        program.into(),
    ];
    with_limits.extend(args);
    let mut cmd = artifacts::command("prlimit", with_limits);
    cmd.current_dir(dir).env("TMPDIR", dir);
    #[cfg(unix)]
    cmd.process_group(0);
    let child = start(cmd, dir).await?;
    let group = child.id();
    Ok(Boxed {
        running: Running::attach(child),
        group,
    })
}

/// A boxed process that runs, its group killed when dropped.
pub(super) struct Boxed {
    pub(super) running: Running,
    group: Option<u32>,
}

impl Drop for Boxed {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(group) = self.group.and_then(|g| i32::try_from(g).ok()) {
            // Whatever is left of the group (the compiler's own children,
            // what a test's program started); none: nothing happens.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(target_os = "linux")]
async fn start(
    mut cmd: tokio::process::Command,
    dir: &Path,
) -> Result<tokio::process::Child, Failure> {
    let runtime = tokio::runtime::Handle::current();
    let dir = dir.to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("oshal-sandbox".into())
        .spawn(move || {
            let _runtime = runtime.enter();
            let started = confine(&dir).and_then(|()| {
                cmd.spawn()
                    .map_err(|e| artifacts::not_started("prlimit", "util-linux", e))
            });
            let _ = tx.send(started);
        })
        .map_err(|e| Failure::retry(format!("cannot start a sandbox thread: {e}")))?;
    rx.await
        .map_err(|_| Failure::retry("the sandbox thread stopped".into()))?
}

#[cfg(not(target_os = "linux"))]
async fn start(
    _cmd: tokio::process::Command,
    _dir: &Path,
) -> Result<tokio::process::Child, Failure> {
    // Retryable: a Linux bot of the fleet may take it.
    Err(Failure::retry(
        "builds run only on a Linux bot, where Landlock boxes them; this bot's host cannot".into(),
    ))
}

/// Restricts the calling thread (and what it starts) to the box.
#[cfg(target_os = "linux")]
fn confine(dir: &Path) -> Result<(), Failure> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
        RulesetCreatedAttr, Scope, path_beneath_rules,
    };
    let abi = ABI::V6;
    // Retryable: another bot's host may box it.
    let refused = |e: landlock::RulesetError| {
        Failure::retry(format!(
            "this bot's host cannot box a build (Landlock ABI 6, Linux 6.12 or later, is needed): {e}"
        ))
    };
    let no_unix_sockets = unix_socket_filter()?;
    Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(SYSTEM, AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(["/dev/null"], AccessFs::from_all(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules([dir], AccessFs::from_all(abi))))
        .and_then(|r| r.restrict_self())
        .map_err(refused)?;
    // After Landlock, which set no_new_privs, as seccomp requires.
    seccompiler::apply_filter(&no_unix_sockets)
        .map_err(|e| Failure::retry(format!("cannot filter a build's system calls: {e}")))?;
    Ok(())
}

/// A seccomp filter that answers `EACCES` to `socket(AF_UNIX, …)` and
/// lets every other call through.
#[cfg(target_os = "linux")]
fn unix_socket_filter() -> Result<seccompiler::BpfProgram, Failure> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    let failed = |e: &dyn std::fmt::Display| {
        Failure::retry(format!("cannot build the seccomp filter for a build: {e}"))
    };
    let arch = std::env::consts::ARCH.try_into().map_err(|e| failed(&e))?;
    let domain = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Eq,
        libc::AF_UNIX as u64,
    )
    .map_err(|e| failed(&e))?;
    let rule = SeccompRule::new(vec![domain]).map_err(|e| failed(&e))?;
    let filter = SeccompFilter::new(
        [(libc::SYS_socket, vec![rule])].into(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EACCES as u32),
        arch,
    )
    .map_err(|e| failed(&e))?;
    filter.try_into().map_err(|e| failed(&e))
}
