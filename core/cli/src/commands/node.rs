//! `oshal node`: a fleet's bot node. Its bots each consume their own Redis
//! stream; the node is given Redis and nothing else (no credential, no
//! grant, no database).

use anyhow::Result;
use std::sync::Arc;

use oshal_core::bot::node::{NodeConfig, NodeExit, run_node};
use oshal_core::clock::SystemClock;

use crate::args::{ModelArgs, PoolArgs};
use crate::shutdown::cancel_on_signal;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = "OSHAL_REDIS")]
    redis: String,
    /// The fleet's key prefix (the controller's --redis-prefix).
    #[arg(long, default_value = "oshal")]
    redis_prefix: String,
    /// This node's name; its bots are NAME-bot-NN. Defaults to host-pid-RAND (new at each start; kept across a restart the controller orders).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    pool: PoolArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Where `media` and `build` tickets' files are (shared by the
    /// fleet's nodes); without it, such tickets on this node fail.
    /// `OSHAL_MEDIA_ROOT`, its earlier name, is read when this is unset.
    #[arg(long, env = "OSHAL_ARTIFACT_ROOT", alias = "media-root")]
    artifact_root: Option<std::path::PathBuf>,
}

pub async fn run(args: Args) -> Result<()> {
    let (bots, skills) = args.pool.checked(oshal_core::ticket::Work::KINDS)?;
    let name = args.name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "node".into());
        // A container's process is always pid 1: a random part keeps a
        // restarted container from coming back as the bots it was, which
        // would run what their lanes still hold after the controller
        // requeued it elsewhere.
        let mut salt = [0u8; 2];
        getrandom::fill(&mut salt).expect("the OS has randomness");
        format!(
            "{host}-{}-{:02x}{:02x}",
            std::process::id(),
            salt[0],
            salt[1]
        )
    });
    let prices = args.model.prices()?;
    let model = args.model.model()?;
    // Refuse here what the controller would refuse: a model with no price.
    prices.check(model.id())?;
    let config = NodeConfig {
        redis_url: args.redis,
        prefix: args.redis_prefix,
        name: name.clone(),
        bots,
        skills,
        model,
        artifacts: args
            .artifact_root
            .or_else(|| std::env::var_os("OSHAL_MEDIA_ROOT").map(Into::into))
            .map(oshal_core::bot::artifacts::ArtifactStore::new),
    };
    let shutdown = cancel_on_signal();
    let node = tokio::spawn(run_node(config, Arc::new(SystemClock), shutdown.clone()));
    // Tests and scripts wait for this line on stdout.
    println!("node {name} up with {bots} bots");
    match node.await?? {
        // A signal that came while the run wound down for a restart wins:
        // a supervisor that asked it to stop must see it stop.
        NodeExit::Restart if !shutdown.is_cancelled() => restart(&name),
        NodeExit::Stopped | NodeExit::Restart => {
            eprintln!("oshal: node {name} stopped; its bots' work was handed back");
            Ok(())
        }
    }
}

/// Starts this node again as ordered: the same arguments, the name pinned
/// (a name made up at start would make it another node). On Unix the
/// process replaces its own image: the same pid, so a supervisor sees no
/// exit, and everything of the old run (connections, memory, the model's
/// client) is gone. Elsewhere a new process takes over and this one ends.
fn restart(name: &str) -> Result<()> {
    use std::io::Write;
    eprintln!("oshal: node {name} restarting as ordered; its bots' work was handed back");
    let _ = std::io::stdout().flush();
    let exe = std::env::current_exe()?;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let named = args
        .iter()
        .any(|a| a == "--name" || a.to_string_lossy().starts_with("--name="));
    if !named {
        args.extend(["--name".into(), name.into()]);
    }
    let mut again = std::process::Command::new(exe);
    again.args(&args);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // Only returns if it failed.
        let e = again.exec();
        anyhow::bail!("node {name} could not start again: {e}");
    }
    #[cfg(not(unix))]
    {
        again.spawn()?;
        Ok(())
    }
}
