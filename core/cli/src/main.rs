//! `oshal`: the headless binary. `serve` runs a controller and the HTTP API,
//! with a local bot pool (local mode) or as a fleet's controller on
//! PostgreSQL and Redis; `node` runs a fleet's bot node; `db-setup` prepares
//! PostgreSQL; the other commands (`security` among them) talk to the API
//! (or, for `bench`, run the platform in-process and measure it).
//!
//! This file only parses, sets up tracing and the runtime, and runs the
//! command: each command is a module of `commands/` (start with `cli.rs`).

mod args;
mod bench;
mod cli;
mod commands;
mod shutdown;

// The platform's modules, by the names the benches use (`crate::store::…`).
use oshal_core::{bot, clock, controller, lane, model, store, ticket};

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli.command.run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
