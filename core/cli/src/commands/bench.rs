//! `oshal bench`: local mode end to end (durable SQLite, built-in model),
//! or with `--fleet` PostgreSQL and Redis with nodes on streams; each with
//! its baseline measured in the same run. The last line is the verdict.

use anyhow::{Result, bail};
use std::path::PathBuf;

use oshal_core::controller::MAX_BOTS;

use crate::bench::{self, BenchConfig};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 50_000)]
    tickets: usize,
    /// Bots (local: in the pool, default 26; fleet: per node, default 13).
    #[arg(long)]
    bots: Option<usize>,
    /// Where scratch stores go (removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Measure fleet mode instead: PostgreSQL and Redis, nodes on streams.
    #[arg(long, requires_all = ["redis", "postgres"])]
    fleet: bool,
    #[arg(long, env = "OSHAL_REDIS")]
    redis: Option<String>,
    /// An administrator's URL: the bench creates and drops a scratch schema.
    #[arg(long, env = "OSHAL_POSTGRES_ADMIN")]
    postgres: Option<String>,
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// One-at-a-time tickets for the round-trip latency (fleet).
    #[arg(long, default_value_t = 500)]
    sequential: usize,
}

pub async fn run(args: Args) -> Result<()> {
    if args.fleet {
        return fleet(args).await;
    }
    let bots = args.bots.unwrap_or(26);
    if args.tickets == 0 || bots == 0 {
        bail!("--tickets and --bots must be at least 1");
    }
    let cfg = BenchConfig {
        tickets: args.tickets,
        bots,
        dir: args.dir.unwrap_or_else(std::env::temp_dir),
        ..BenchConfig::default()
    };
    let report = bench::run_local(cfg).await?;
    println!(
        "baseline sqlite_ticket_inserts_per_s={:.0} (durable batches of 500, same schema and pragmas)",
        report.baseline_inserts_per_s
    );
    println!(
        "store commits={} rows_per_commit={:.0} ledger_rows={} ratio_to_baseline={:.2}",
        report.commits,
        report.rows_per_commit,
        report.ledger_rows,
        report.tickets_per_s / report.baseline_inserts_per_s
    );
    let limit = &report.store_limit;
    println!(
        "store_limit per_s={:.0} commits={} rows_per_commit={:.0} (the same lives through the same writer, no controller, lanes or bots; SQLite WAL, synchronous=FULL)",
        limit.per_s, limit.commits, limit.rows_per_commit
    );
    println!("{}", report.line());
    if report.lost > 0 || report.ledger_rows != report.ok as i64 {
        bail!("bench found lost tickets or a ledger that does not match the finished attempts");
    }
    Ok(())
}

async fn fleet(args: Args) -> Result<()> {
    let (tickets, nodes) = (args.tickets, args.nodes);
    let bots = args.bots.unwrap_or(13);
    if tickets == 0 || bots == 0 || nodes == 0 || nodes * bots > MAX_BOTS {
        bail!(
            "--tickets, --nodes and --bots must be at least 1, and nodes × bots at most {MAX_BOTS}"
        );
    }
    let (Some(redis), Some(postgres)) = (args.redis, args.postgres) else {
        bail!("--fleet needs --redis and --postgres");
    };
    let report = bench::fleet::run_fleet(bench::fleet::FleetBenchConfig {
        tickets,
        nodes,
        bots,
        postgres_admin: postgres,
        redis,
        sequential: args.sequential,
    })
    .await?;
    let limit = &report.store_limit;
    println!(
        "store_limit per_s={:.0} commits={} rows_per_commit={:.0} {} (the same lives through the same writer as oshal_app under row-level security, no controller, lanes or bots)",
        limit.per_s, limit.commits, limit.rows_per_commit, report.durability
    );
    println!(
        "fleet nodes={nodes} bots_per_node={bots} streams={} admit_p50_ms={:.3} sequential_commits={:.2} sequential_store_ms={:.3} loaded_p50_ms={:.1} ledger_rows={} commits={} rows_per_commit={:.0} store_busy={:.2} bots_view_ms={:.2}",
        nodes * bots,
        report.admit_p50_ms,
        report.sequential_commits,
        report.sequential_store_ms,
        report.loaded_p50_ms,
        report.ledger_rows,
        report.commits,
        report.rows_per_commit,
        report.store_busy,
        report.bots_view_ms
    );
    println!("{}", report.line());
    if report.lost > 0 || report.ledger_rows != report.ok as i64 {
        bail!("bench found lost tickets or a ledger that does not match the finished attempts");
    }
    Ok(())
}
