//! What the command line accepts: the `oshal` command and its subcommands,
//! each defined by its own module in `commands/`.

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::commands::{
    bench, bots, cancel, connectors, db_setup, desk, health, mesh, node, openapi, ops, security,
    serve, soak, submit, tenants, ticket, tickets, tokens, trading, venue, workflow,
};

#[derive(Parser)]
#[command(
    name = "oshal",
    version,
    about = "Oshal: a control center for fleets of AI-agent bots"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start; boxing a variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Command {
    /// Run a controller and the HTTP API: with a local bot pool on SQLite
    /// (local mode, the default), or, given --postgres and --redis, as the
    /// controller of a fleet whose bots run in `oshal node` processes.
    Serve(serve::Args),
    /// Run a bot node of a fleet: N bots, each consuming its own Redis stream.
    Node(node::Args),
    /// Prepare a PostgreSQL database for fleet mode, as an administrator:
    /// creates the roles oshal_owner, oshal_app and oshal_readonly, the
    /// schema, and runs the migrations.
    DbSetup(db_setup::Args),
    /// Exit 0 if a controller (its /api/v1/health) or, with --node, a
    /// node (its bots' registrations in Redis) is healthy: a container's
    /// health check or a Kubernetes probe.
    Health(health::Args),
    /// Submit a ticket.
    Submit(submit::Args),
    /// List tickets, newest first.
    Tickets(tickets::Args),
    /// Show one ticket in full.
    Ticket(ticket::Args),
    /// Connectors: list them, import and approve catalog entries, grant and
    /// revoke, store a credential, read the audit trail and the effect ledger.
    Connectors(connectors::Args),
    /// The Security Center: scan now, list findings and controls, export
    /// and import SARIF, suppress a finding with a reason.
    Security(security::Args),
    /// Tenant-scoped API tokens: create one bound to a tenant and a role
    /// (operator or viewer), list them, revoke one; `whoami` for any token.
    Tokens(tokens::Args),
    /// The trading desk in process: backtest a strategy over seeded quotes
    /// (a replay check with --expect-hash), or measure its throughput.
    Trading(trading::Args),
    /// The trading desk's paper sessions on a running controller: open one
    /// (its signals made by the bots), list, show, blotter, recap, kill.
    Desk(desk::Args),
    /// A paper venue in a process of its own: `init` a data directory (an
    /// API key and the signed `venue-paper` connector for its URL), `serve` it.
    Venue(venue::Args),
    /// Workflow runs on a running controller: validate a spec, run it,
    /// read runs and their history, approve, retry from a node, stop.
    Workflow(workflow::Args),
    /// The operations loop on a running controller: alerts and incidents,
    /// acknowledge and move them, the monitor's settings, silences,
    /// maintenance windows, change events, a webhook payload from a file.
    Ops(ops::Args),
    /// The mesh of remote nodes on a running controller: their status
    /// (Headscale and this host's tailscaled merged), the Headscale key,
    /// enrol a node, check or set the tailnet policy.
    Mesh(mesh::Args),
    /// The bots of a running controller: list them, drain one or a
    /// node's (routed nothing more; what waits in their lanes goes to
    /// other bots), uncordon them.
    Bots(bots::Args),
    /// The tenants of a running controller: list them, pause one (its
    /// tickets are kept, not routed), resume one.
    Tenants(tenants::Args),
    /// Cancel a ticket.
    Cancel(cancel::Args),
    /// Measure local mode end to end (durable SQLite, built-in model).
    Bench(bench::Args),
    /// Print the HTTP API's OpenAPI 3.1 contract (what
    /// `GET /api/v1/openapi.json` serves).
    Openapi(openapi::Args),
    /// Run a fleet (a controller and two nodes on PostgreSQL and a Redis of
    /// its own) under steady load, killing a node every minute and
    /// restarting Redis once, then report what was lost or counted twice
    /// and how memory moved.
    Soak(soak::Args),
}

impl Command {
    pub async fn run(self) -> Result<()> {
        match self {
            Self::Serve(a) => serve::run(a).await,
            Self::Node(a) => node::run(a).await,
            Self::DbSetup(a) => db_setup::run(a).await,
            Self::Health(a) => health::run(a).await,
            Self::Submit(a) => submit::run(a).await,
            Self::Tickets(a) => tickets::run(a).await,
            Self::Ticket(a) => ticket::run(a).await,
            Self::Connectors(a) => connectors::run(a).await,
            Self::Security(a) => security::run(a).await,
            Self::Tokens(a) => tokens::run(a).await,
            Self::Trading(a) => trading::run(a).await,
            Self::Desk(a) => desk::run(a).await,
            Self::Venue(a) => venue::run(a).await,
            Self::Workflow(a) => workflow::run(a).await,
            Self::Ops(a) => ops::run(a).await,
            Self::Mesh(a) => mesh::run(a).await,
            Self::Bots(a) => bots::run(a).await,
            Self::Tenants(a) => tenants::run(a).await,
            Self::Cancel(a) => cancel::run(a).await,
            Self::Bench(a) => bench::run(a).await,
            Self::Openapi(a) => openapi::run(a).await,
            Self::Soak(a) => soak::run(a).await,
        }
    }
}
