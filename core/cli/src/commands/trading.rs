//! `oshal trading`: the desk in process. `backtest` runs one strategy over
//! a seeded day (or more) of quotes and prints what it did and the hash of
//! its fill stream (`--expect-hash` makes it a replay check); `bench`
//! measures the desk's throughput and one order's latency through risk and
//! matching.

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use oshal_trading::book::{Incoming, TimeInForce};
use oshal_trading::desk::{Desk, DeskConfig, Disposition, Entries};
use oshal_trading::fixed::{FIXED_SCALAR, Price};
use oshal_trading::market::{self, Quote};
use oshal_trading::order::OrderSide;
use oshal_trading::recap::recap;
use oshal_trading::risk::{self, AccountView, OrderIntent, TradingState};
use oshal_trading::signal::Strategy;
use oshal_trading::venue::venue_book;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

/// A shipped strategy, with its default parameters.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StrategyName {
    /// EMA 5 over EMA 20 of closes.
    EmaCross,
    /// 2 standard deviations from a 30-bar mean.
    ZScore,
    /// A close beyond the last 20 bars' range.
    Breakout,
}

impl StrategyName {
    pub(crate) fn strategy(self) -> Strategy {
        match self {
            Self::EmaCross => Strategy::EmaCross { fast: 5, slow: 20 },
            Self::ZScore => Strategy::ZScore {
                window: 30,
                entry_z: 2.0,
            },
            Self::Breakout => Strategy::Breakout { window: 20 },
        }
    }
}

#[derive(clap::Args, Clone)]
pub struct Session {
    /// The market data's seed: the same seed, the same quotes.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Days of one-second quotes.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=30))]
    pub days: u32,
    /// Run this many bars instead of whole days (what a paper session of
    /// as many bars trades: the same fills, the same hash).
    #[arg(long, conflicts_with = "days", value_parser = clap::value_parser!(u32).range(2..=2_000_000))]
    pub bars: Option<u32>,
    #[arg(long, value_enum, default_value = "ema-cross")]
    pub strategy: StrategyName,
    /// ETHUSD.SIM, BTCUSD.SIM or EURUSD.SIM.
    #[arg(long, default_value = "ETHUSD.SIM")]
    pub instrument: String,
    /// The bars the strategy reads, in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub bar_seconds: u32,
    /// How the desk opens a position: at market, or with a limit at the
    /// signal's price good till the view's period ends.
    #[arg(long, value_enum, default_value = "market")]
    pub entries: EntriesArg,
}

/// How the desk opens a position.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EntriesArg {
    Market,
    Limit,
}

impl EntriesArg {
    pub(crate) fn desk(self) -> Entries {
        match self {
            Self::Market => Entries::Market,
            Self::Limit => Entries::Limit,
        }
    }
}

#[derive(Subcommand)]
pub enum Action {
    /// Run a strategy over seeded quotes and print its orders, fills, P&L
    /// and the hash of its fill stream.
    Backtest {
        #[command(flatten)]
        session: Session,
        /// Fail unless the fill stream hashes to this (a replay check).
        #[arg(long)]
        expect_hash: Option<String>,
    },
    /// Measure market events per second through the whole desk, and one
    /// order's latency through risk and matching.
    Bench {
        #[command(flatten)]
        session: Session,
        /// Runs to take the median of.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
        runs: u32,
    },
}

/// The quotes of one instrument and the desk's configuration for them.
fn prepare(s: &Session) -> Result<(Vec<Quote>, DeskConfig)> {
    let model = market::listed(&s.instrument).with_context(|| {
        format!(
            "--instrument {:?}: the venue lists ETHUSD.SIM, BTCUSD.SIM and EURUSD.SIM",
            s.instrument
        )
    })?;
    let instrument = model.instrument.clone();
    let steps = match s.bars {
        Some(bars) => bars as usize * s.bar_seconds as usize,
        None => 86_400 * s.days as usize,
    };
    let quotes = market::seconds(s.seed, model, steps);
    let bar_ms = i64::from(s.bar_seconds) * 1_000;
    let config = DeskConfig {
        entries: s.entries.desk(),
        ..DeskConfig::paper(
            instrument,
            s.strategy.strategy(),
            bar_ms,
            &quotes[0],
            s.seed,
        )
    };
    Ok((quotes, config))
}

fn usd(raw: i128) -> String {
    format!("{:.2}", raw as f64 / FIXED_SCALAR as f64)
}

fn backtest(session: &Session, expect: Option<&str>) -> Result<()> {
    let (quotes, config) = prepare(session)?;
    let mut desk = Desk::new(config).context("the desk's configuration")?;
    desk.run(&quotes).context("the backtest")?;
    let mut dispositions: BTreeMap<String, usize> = BTreeMap::new();
    for s in desk.signals() {
        let key = match &s.disposition {
            Disposition::Denied { code } => format!("denied {code}"),
            Disposition::Rejected { code } => format!("rejected {code}"),
            other => serde_json::to_value(other)?["state"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        };
        *dispositions.entry(key).or_default() += 1;
    }
    let p = desk.position();
    let mark = quotes
        .last()
        .map(|q| q.bid)
        .unwrap_or(Price::from_raw(0, 0));
    let slippage: i128 = desk
        .fills()
        .iter()
        .map(|f| i128::from(f.slippage) * i128::from(f.quantity.raw) / i128::from(FIXED_SCALAR))
        .sum();
    println!("events={}", desk.events());
    println!("signals={}", desk.signals().len());
    for (k, n) in &dispositions {
        println!("  {k}={n}");
    }
    println!("orders={}", desk.orders().len());
    println!("fills={}", desk.fills().len());
    println!("position={}", p.quantity as f64 / FIXED_SCALAR as f64);
    println!("realized_pnl_usd={}", usd(p.realized_pnl));
    println!("unrealized_pnl_usd={}", usd(p.unrealized_pnl(mark)));
    println!("fees_usd={}", usd(p.commissions));
    println!("slippage_usd={}", usd(slippage));
    println!("ledger_imbalance={}", desk.ledger().imbalance());
    // No model is called in a backtest: the signals cost nothing to make.
    let r = recap(desk.signals(), desk.fills(), |_| 0).total;
    let opt = |v: Option<f64>| v.map_or("none".to_owned(), |v| format!("{v:.3}"));
    println!("net_pnl_usd={}", usd(r.net));
    println!("closed={} wins={} losses={}", r.closed, r.wins, r.losses);
    println!("win_rate={}", opt(r.win_rate));
    println!("profit_factor={}", opt(r.profit_factor));
    println!("max_drawdown_usd={}", usd(r.max_drawdown));
    println!("sharpe={}", opt(r.sharpe));
    let hash = desk.fill_hash();
    println!("fill_hash={hash}");
    if let Some(want) = expect
        && want != hash
    {
        bail!("the replay diverged: its fill stream hashes to {hash}, not {want}");
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench(session: &Session, runs: u32) -> Result<()> {
    let (quotes, config) = prepare(session)?;
    let mut rates = Vec::new();
    let mut orders_per_s = Vec::new();
    let mut hash = None;
    for run in 1..=runs {
        let mut desk = Desk::new(config.clone())?;
        let start = Instant::now();
        desk.run(&quotes)?;
        let secs = start.elapsed().as_secs_f64();
        let rate = desk.events() as f64 / secs;
        println!(
            "run {run}: {} events in {secs:.3} s = {rate:.0} events/s; {} orders, {} fills",
            desk.events(),
            desk.orders().len(),
            desk.fills().len()
        );
        rates.push(rate);
        orders_per_s.push(desk.orders().len() as f64 / secs);
        let h = desk.fill_hash();
        if hash.as_ref().is_some_and(|prev| prev != &h) {
            bail!("run {run} gave another fill hash: the desk is not deterministic");
        }
        hash = Some(h);
    }
    println!("events_per_s_median={:.0}", median(rates));
    println!("orders_per_s_median={:.1}", median(orders_per_s));
    println!("fill_hash={}", hash.unwrap_or_default());

    // One order through the risk checks and the venue's book, alone.
    let q = &quotes[quotes.len() / 2];
    let i = &config.instrument;
    let venue = venue_book(i, q, config.depth_levels);
    let recent: Vec<i64> = Vec::new();
    let mut nanos = Vec::with_capacity(100_000);
    for n in 0..100_000u32 {
        let start = Instant::now();
        let intent = OrderIntent {
            instrument: i,
            side: OrderSide::Buy,
            quantity: config.trade_quantity,
            price: None,
            reference_price: q.ask,
            reduce_only: false,
            expire_time_ms: None,
        };
        let account = AccountView {
            state: TradingState::Active,
            free_balance: config.deposit,
            position: 0,
            instrument_exposure: 0,
            recent_orders_ms: &recent,
            now_ms: q.ts_ms,
        };
        let decision = risk::check(&intent, &config.limits, &account);
        let mut book = venue.clone();
        let matched = book.submit(Incoming {
            id: format!("O-{n}"),
            side: OrderSide::Buy,
            quantity: config.trade_quantity,
            price: None,
            time_in_force: TimeInForce::Ioc,
            post_only: false,
        });
        nanos.push(start.elapsed().as_nanos() as u64);
        std::hint::black_box((decision, matched));
    }
    nanos.sort_unstable();
    let pct = |p: usize| nanos[(nanos.len() * p / 100).min(nanos.len() - 1)];
    println!(
        "order_risk_and_match_ns p50={} p99={} (100000 orders)",
        pct(50),
        pct(99)
    );
    Ok(())
}

pub async fn run(args: Args) -> Result<()> {
    match args.action {
        Action::Backtest {
            session,
            expect_hash,
        } => backtest(&session, expect_hash.as_deref()),
        Action::Bench { session, runs } => bench(&session, runs),
    }
}
