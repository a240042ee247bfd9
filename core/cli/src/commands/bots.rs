//! `oshal bots`: a running controller's bots, through the API: list them
//! (live, drained, load, lane, pace), drain one (it finishes what it holds
//! and is routed nothing more; the tickets waiting in its lane go to other
//! bots) or every live bot of a node (`--node`), uncordon them (they take
//! work again), or restart a fleet node (it stops as on SIGTERM, what its
//! bots held goes back to the queue, and it starts again as a new run).

use anyhow::Result;
use clap::Subcommand;
use oshal_core::api::client::Client;
use oshal_core::controller::BotView;

use crate::args::{ActionArgs, api_error, json, print};

pub type Args = ActionArgs<Action>;

#[derive(Subcommand)]
pub enum Action {
    /// Every bot: node, state, attempts held, lane depth and lag, pace.
    List {
        /// The whole list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Drain a live bot, or with `--node` every live bot of a node at
    /// once (refused for the last live bots of a skill).
    Drain {
        #[arg(required_unless_present = "node", conflicts_with = "node")]
        bot: Option<String>,
        /// A node: all of its live bots, together.
        #[arg(long)]
        node: Option<String>,
    },
    /// Restart a fleet node: it stops as on SIGTERM (what its bots hold
    /// goes back to the queue) and starts again under its name.
    Restart {
        /// The node.
        #[arg(long)]
        node: String,
    },
    /// Let a drained bot, or with `--node` a node's bots, take work again.
    Uncordon {
        #[arg(required_unless_present = "node", conflicts_with = "node")]
        bot: Option<String>,
        /// A node: all of its bots.
        #[arg(long)]
        node: Option<String>,
    },
}

impl Action {
    async fn call(self, client: &Client) -> Result<serde_json::Value> {
        match self {
            Self::List { json: true } => json(client.bots().await),
            Self::List { json: false } => {
                let bots = client.bots().await.map_err(api_error)?;
                for b in &bots {
                    println!("{}", line(b));
                }
                Ok(serde_json::Value::Null)
            }
            Self::Drain {
                node: Some(node), ..
            } => json(client.drain_node(node.as_str()).await),
            Self::Drain { bot, .. } => {
                json(client.drain_bot(bot.unwrap_or_default().as_str()).await)
            }
            Self::Restart { node } => json(client.restart_node(node.as_str()).await),
            Self::Uncordon {
                node: Some(node), ..
            } => json(client.uncordon_node(node.as_str()).await),
            Self::Uncordon { bot, .. } => {
                json(client.uncordon_bot(bot.unwrap_or_default().as_str()).await)
            }
        }
    }
}

/// One bot on a line; what could not be read says so.
fn line(b: &BotView) -> String {
    let state = match (b.live, b.cordoned) {
        (true, false) => "live",
        (true, true) => "drained",
        (false, true) => "lost, drained",
        (false, false) => "lost",
    };
    let lane = b.lane.map_or_else(
        || "lane unknown".to_owned(),
        |l| format!("lane {} waiting, {} ms lag", l.depth, l.lag_ms),
    );
    let pace = b.attempt_ms.map_or_else(
        || "no recent attempt".to_owned(),
        |ms| format!("{ms} ms per attempt"),
    );
    format!(
        "{}  {}  {state}  {} held  {lane}  {pace}",
        b.id,
        b.node.as_deref().unwrap_or("local"),
        b.in_flight
    )
}

pub async fn run(args: Args) -> Result<()> {
    print(&args.action.call(&args.api.client()?).await?)
}
