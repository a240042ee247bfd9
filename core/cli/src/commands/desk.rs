//! `oshal desk`: the trading desk's paper sessions on a running controller,
//! through the API. `open` starts one (its signals made by the fleet's bots
//! as `signal` tickets), `list` and `show` read them, `blotter` prints a
//! session's signals (each with its ticket, bot, model cost, risk checks
//! and disposition) and fills, `recap` what it earned net of fees and model
//! spend, `orders` its orders with their ledger postings, `kill` pulls its
//! kill switch at one of three levels, `state` sets the trading state of
//! its desk or of one bot's signals and `close` ends it where it is.

use anyhow::Result;
use clap::{Subcommand, ValueEnum};
use oshal_core::api::client::Client;
use oshal_core::trading::{
    CloseRequest, EntryStyle, KillLevel, KillRequest, NewSession, OrdersQuery, StateRequest,
    TradingStateName,
};

use super::trading::{EntriesArg, StrategyName};
use crate::args::{ActionArgs, json, print};

pub type Args = ActionArgs<Action>;

/// The kill switch's levels, each including the ones before it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Level {
    /// No new entries.
    HaltEntries,
    /// Also cancel orders not yet at the venue.
    CancelOrders,
    /// Also close the position.
    Flatten,
}

impl From<Level> for KillLevel {
    fn from(l: Level) -> Self {
        match l {
            Level::HaltEntries => KillLevel::HaltEntries,
            Level::CancelOrders => KillLevel::CancelOrders,
            Level::Flatten => KillLevel::Flatten,
        }
    }
}

/// A trading state.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateName {
    Active,
    /// Only orders that reduce the position.
    Reducing,
    /// No new orders.
    Halted,
}

impl From<StateName> for TradingStateName {
    fn from(s: StateName) -> Self {
        match s {
            StateName::Active => TradingStateName::Active,
            StateName::Reducing => TradingStateName::Reducing,
            StateName::Halted => TradingStateName::Halted,
        }
    }
}

#[derive(Subcommand)]
pub enum Action {
    /// Open a paper session and start it.
    Open {
        #[arg(long, value_enum, default_value = "ema-cross")]
        strategy: StrategyName,
        /// ETHUSD.SIM, BTCUSD.SIM or EURUSD.SIM.
        #[arg(long, default_value = "ETHUSD.SIM")]
        instrument: String,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        #[arg(long, default_value_t = 60)]
        bar_seconds: u32,
        /// Bars the session runs (bars × bar seconds at most one day).
        #[arg(long, default_value_t = 240)]
        bars: u32,
        /// Simulated seconds per second; 0 runs as fast as the bots answer.
        #[arg(long, default_value_t = 0)]
        speed: u32,
        #[arg(long)]
        tenant: Option<String>,
        /// Send the orders to a venue in a process of its own, through this
        /// connector (`venue-paper`, from `oshal venue init`); by default
        /// they go to the desk's own venue in process.
        #[arg(long)]
        venue: Option<String>,
        /// How the desk opens a position: at market, or with a limit at
        /// the signal's price good till the view's period ends (resting at
        /// the venue in process).
        #[arg(long, value_enum, default_value = "market")]
        entries: EntriesArg,
    },
    /// Every session this token may see, newest first.
    List,
    /// One session: its flow, position, P&L, kills and fill hash.
    Show { id: String },
    /// A session's signals and fills.
    Blotter { id: String },
    /// What a session earned, by strategy, day and bot.
    Recap { id: String },
    /// A session's orders (or one, --order O-3) with their ledger postings.
    Orders {
        id: String,
        #[arg(long)]
        order: Option<String>,
    },
    /// Set the trading state of a session's desk, or with --bot of one
    /// bot's signals (ACTIVE also resumes a desk after a kill).
    State {
        id: String,
        #[arg(long, value_enum)]
        state: StateName,
        #[arg(long)]
        bot: Option<String>,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
    /// Close a running session: it stops where it is, for good.
    Close {
        id: String,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
    /// Pull a session's kill switch.
    Kill {
        id: String,
        #[arg(long, value_enum)]
        level: Level,
        /// Why, for the record.
        #[arg(long)]
        reason: String,
    },
}

impl Action {
    async fn call(self, client: &Client) -> Result<serde_json::Value> {
        match self {
            Self::Open {
                strategy,
                instrument,
                seed,
                bar_seconds,
                bars,
                speed,
                tenant,
                venue,
                entries,
            } => {
                let spec = NewSession {
                    strategy: serde_json::to_value(strategy.strategy())?,
                    instrument,
                    seed,
                    bar_seconds,
                    bars,
                    speed,
                    tenant,
                    venue,
                    entries: match entries {
                        EntriesArg::Market => EntryStyle::Market,
                        EntriesArg::Limit => EntryStyle::Limit,
                    },
                };
                json(client.open_session(&spec).await)
            }
            Self::List => json(client.sessions().await),
            Self::Show { id } => json(client.session(id).await),
            Self::Blotter { id } => json(client.blotter(id).await),
            Self::Recap { id } => json(client.recap(id).await),
            Self::Orders { id, order } => {
                json(client.session_orders(id, &OrdersQuery { order }).await)
            }
            Self::State {
                id,
                state,
                bot,
                reason,
            } => {
                let request = StateRequest {
                    state: state.into(),
                    bot,
                    reason,
                };
                json(client.set_session_state(id, &request).await)
            }
            Self::Close { id, reason } => {
                json(client.close_session(id, &CloseRequest { reason }).await)
            }
            Self::Kill { id, level, reason } => {
                let request = KillRequest {
                    level: level.into(),
                    reason,
                };
                json(client.kill_session(id, &request).await)
            }
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    print(&args.action.call(&args.api.client()?).await?)
}
