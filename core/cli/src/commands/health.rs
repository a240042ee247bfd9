//! `oshal health`: exits 0 when the process it asks about is healthy and 1
//! when not, printing one line either way: a container's health check or a
//! Kubernetes probe in an image that has no shell and no curl
//! (`deploy/images/oshal`). Without `--node` it asks a controller: `GET
//! URL/api/v1/health` must answer `ok: true` (no token is needed or sent);
//! with `--live`, any answer of a controller will do (one whose store is
//! down answers 503 and is alive: a liveness probe must not restart it for
//! its database's outage). With `--node` it asks the fleet's Redis whether
//! a node's bots are registered: at least one registration of that node
//! must be live (its heartbeat keeps it for 3 s). It writes nothing, shows
//! no password a Redis URL holds, and waits at most `--timeout-s` on the
//! network.

use anyhow::{Context, Result, bail};
use std::time::Duration;

use oshal_core::controller::Health;
use oshal_core::lane::redis::{Keys, Registration};

#[derive(clap::Args)]
pub struct Args {
    /// The controller's API (asked unless --node is given).
    #[arg(long, default_value = "http://127.0.0.1:7411", conflicts_with = "node")]
    url: String,
    /// Alive is enough: the controller answers its health route, ready or
    /// not (its store may be down).
    #[arg(long, conflicts_with = "node")]
    live: bool,
    /// Ask about a node instead: NAME's bots (its --name), or without a
    /// NAME the node of this host (`oshal node` names itself
    /// `<hostname>-<pid>-<rand>` when given no --name).
    #[arg(long, num_args = 0..=1, value_name = "NAME")]
    node: Option<Option<String>>,
    /// The fleet's Redis (the node's --redis).
    #[arg(long, env = "OSHAL_REDIS")]
    redis: Option<String>,
    /// The fleet's key prefix (the node's --redis-prefix).
    #[arg(long, default_value = "oshal")]
    redis_prefix: String,
    /// Seconds to wait for an answer (1..=60).
    #[arg(long, default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    timeout_s: u64,
}

pub async fn run(args: Args) -> Result<()> {
    let timeout = Duration::from_secs(args.timeout_s);
    let line = match (&args.node, &args.redis) {
        (Some(name), Some(redis)) => node(redis, &args.redis_prefix, name.as_deref(), timeout)
            .await
            .with_context(|| {
                format!(
                    "unhealthy: node in {} (prefix {})",
                    without_password(redis),
                    args.redis_prefix
                )
            })?,
        (Some(_), None) => bail!("--node needs --redis (or OSHAL_REDIS): the fleet's Redis"),
        (None, _) => controller(&args.url, args.live, timeout)
            .await
            .with_context(|| format!("unhealthy: controller at {}", args.url))?,
    };
    println!("{line}");
    Ok(())
}

/// `url` as it may be shown: a password it holds is left out.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "the Redis URL given (unreadable)".to_owned(),
    }
}

/// The controller's own answer: 200 with `ok: true`, or any health
/// answer if `live` is enough.
async fn controller(url: &str, live: bool, timeout: Duration) -> Result<String> {
    let http = reqwest::Client::builder().timeout(timeout).build()?;
    let at = format!("{}/api/v1/health", url.trim_end_matches('/'));
    let reply = http.get(&at).send().await.context("no answer")?;
    let status = reply.status();
    let body = reply.bytes().await.context("no answer")?;
    let health: Health = serde_json::from_slice(&body)
        .with_context(|| format!("GET {at} answered {status}, not an Oshal controller"))?;
    if !health.ok && !live {
        bail!("store {} ({status})", health.store);
    }
    let how = if health.ok { "healthy" } else { "alive" };
    Ok(format!(
        "{how}: controller {} (store {}, {} bots live)",
        health.version, health.store, health.bots_live
    ))
}

/// Whether `name` (else this host's node) has a live bot registration.
async fn node(redis: &str, prefix: &str, name: Option<&str>, timeout: Duration) -> Result<String> {
    let host;
    let wanted = match name {
        Some(n) => Wanted::Named(n),
        None => {
            host = std::fs::read_to_string("/etc/hostname")
                .context("--node without a NAME reads /etc/hostname")?
                .trim()
                .to_owned();
            Wanted::Host(&host)
        }
    };
    let client = redis::Client::open(redis)
        .map_err(|e| anyhow::anyhow!("--redis {}: {e}", without_password(redis)))?;
    let keys = Keys::new(prefix);
    // The client's own limits (1 s to connect, 0.5 s an answer) are ours.
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let live = tokio::time::timeout(timeout, async {
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(keys.bots())
            .query_async(&mut conn)
            .await?;
        if ids.is_empty() {
            return Ok::<_, redis::RedisError>(Vec::new());
        }
        let bot_keys: Vec<String> = ids.iter().map(|b| keys.bot(b)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET")
            .arg(&bot_keys)
            .query_async(&mut conn)
            .await?;
        Ok(values.into_iter().flatten().collect())
    })
    .await
    .with_context(|| format!("no answer within {}s (--timeout-s)", timeout.as_secs()))??;
    let mut nodes = std::collections::BTreeMap::<String, usize>::new();
    for value in live {
        // An unreadable registration is another version's: not this node's.
        if let Ok(r) = serde_json::from_str::<Registration>(&value)
            && wanted.matches(&r.node)
        {
            *nodes.entry(r.node).or_default() += 1;
        }
    }
    match nodes.len() {
        0 => bail!("no live bot of {wanted}"),
        1 => {
            let (node, bots) = nodes.pop_first().unwrap_or_default();
            Ok(format!("healthy: node {node} ({bots} bots live)"))
        }
        _ => bail!(
            "more than one live node is {wanted} ({}): name it with --node NAME",
            nodes.into_keys().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// Which node's registrations count.
enum Wanted<'a> {
    /// A node given its name.
    Named(&'a str),
    /// A node that named itself after this host: `<hostname>-<pid>-<rand>`.
    Host(&'a str),
}

impl Wanted<'_> {
    fn matches(&self, node: &str) -> bool {
        match self {
            Self::Named(n) => node == *n,
            Self::Host(h) => node
                .strip_prefix(h)
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|rest| rest.split_once('-'))
                .is_some_and(|(pid, salt)| {
                    let digits = |s: &str, hex: bool| {
                        !s.is_empty()
                            && s.bytes().all(|b| {
                                if hex {
                                    b.is_ascii_hexdigit()
                                } else {
                                    b.is_ascii_digit()
                                }
                            })
                    };
                    digits(pid, false) && digits(salt, true)
                }),
        }
    }
}

impl std::fmt::Display for Wanted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Named(n) => write!(f, "node {n}"),
            Self::Host(h) => write!(f, "a node of host {h} (named {h}-<pid>-<rand>)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Wanted;

    #[test]
    fn a_host_matches_only_the_names_oshal_node_gives_itself() {
        let host = Wanted::Host("c0ffee");
        assert!(host.matches("c0ffee-1-a3f0"));
        assert!(host.matches("c0ffee-40213-0b1c"));
        assert!(!host.matches("c0ffee"));
        assert!(!host.matches("c0ffee-"));
        assert!(!host.matches("c0ffee-1"));
        assert!(!host.matches("c0ffee-1-"));
        assert!(!host.matches("c0ffee-2-x"));
        assert!(!host.matches("c0ffee2-1-a3f0"));
        assert!(Wanted::Named("gpu-1").matches("gpu-1"));
        assert!(!Wanted::Named("gpu-1").matches("gpu-10"));
    }

    #[test]
    fn a_redis_password_is_never_shown() {
        let shown = super::without_password("redis://:hunter2hunter2@redis:6379/");
        assert_eq!(shown, "redis://:***@redis:6379/");
        assert_eq!(
            super::without_password("redis://redis:6379/"),
            "redis://redis:6379/"
        );
        assert!(!super::without_password("redis://:hunter2@%zz").contains("hunter2"));
    }
}
