//! Market data: a seeded generator of L1 quotes, OHLCV bars built from
//! them, and OHLCV bars read from CSV.
//!
//! The generator walks each instrument's mid price as a geometric Brownian
//! motion whose volatility switches between a calm and a stressed regime
//! (a two-state Markov chain), with occasional jumps. It draws from one
//! ChaCha8 stream seeded by the caller, so the same seed and models give
//! the same data, byte for byte ([`fingerprint`] hashes it). Prices land
//! on the instrument's tick, sizes on its lot.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_distr::{Distribution, Normal, StandardUniform};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fixed::{FIXED_SCALAR, Price, Quantity};
use crate::instrument::Instrument;

/// How one instrument's price moves, per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceModel {
    pub instrument: Instrument,
    pub start_mid: f64,
    /// Drift per step (log return).
    pub drift: f64,
    /// Volatility per step in the calm regime, and in the stressed one.
    pub calm_vol: f64,
    pub stressed_vol: f64,
    /// Chance per step of switching regime.
    pub switch_chance: f64,
    /// Chance per step of a jump, and the jump's size (log-return sd).
    pub jump_chance: f64,
    pub jump_vol: f64,
    /// Half the spread, in ticks.
    pub half_spread_ticks: i64,
    /// Most lots quoted on a side.
    pub max_lots: u64,
}

/// The listed instrument `id`'s price model, if the venue lists it.
pub fn listed(id: &str) -> Option<PriceModel> {
    sim_models().into_iter().find(|m| m.instrument.id == id)
}

/// `steps` one-second quotes of one instrument from `seed`, from time 0:
/// what a `signal` ticket reads and what a paper session trades on, so a
/// signal for the first `k` bars sees exactly the session's first `k` bars.
pub fn seconds(seed: u64, model: PriceModel, steps: usize) -> Vec<Quote> {
    Generator::new(seed, vec![model]).quotes(0, 1_000, steps)
}

/// The simulated venue's listed instruments and how their prices move
/// per one-second step: ETHUSD.SIM, BTCUSD.SIM and EURUSD.SIM, each with
/// its own tick, lot and precision, calm and stressed regimes and jumps.
pub fn sim_models() -> Vec<PriceModel> {
    let instrument =
        |id: &str, tick: &str, price_precision: u8, lot: &str, size_precision: u8, max: &str| {
            let price = |field, s| Price::parse(field, s, price_precision).expect("a listed price");
            let qty = |field, s| Quantity::parse(field, s, size_precision).expect("a listed size");
            Instrument {
                id: id.into(),
                price_precision,
                size_precision,
                tick_size: price("tick_size", tick),
                lot_size: qty("lot_size", lot),
                min_quantity: qty("min_quantity", lot),
                max_quantity: qty("max_quantity", max),
            }
        };
    let model = |instrument, start_mid, calm_vol| PriceModel {
        instrument,
        start_mid,
        drift: 0.0,
        calm_vol,
        stressed_vol: calm_vol * 5.0,
        switch_chance: 0.002,
        jump_chance: 0.0005,
        jump_vol: calm_vol * 20.0,
        half_spread_ticks: 1,
        max_lots: 40,
    };
    vec![
        model(
            instrument("ETHUSD.SIM", "0.05", 2, "0.010", 3, "1000"),
            2500.0,
            0.0004,
        ),
        model(
            instrument("BTCUSD.SIM", "0.5", 1, "0.001", 3, "100"),
            60_000.0,
            0.0003,
        ),
        model(
            instrument("EURUSD.SIM", "0.00001", 5, "1000", 0, "10000000"),
            1.08,
            0.00005,
        ),
    ]
}

/// A best bid and offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub ts_ms: i64,
    pub instrument: String,
    pub bid: Price,
    pub ask: Price,
    pub bid_size: Quantity,
    pub ask_size: Quantity,
}

/// One period's open, high, low, close and volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bar {
    /// When the period opened.
    pub ts_ms: i64,
    pub instrument: String,
    pub open: Price,
    pub high: Price,
    pub low: Price,
    pub close: Price,
    pub volume: Quantity,
}

struct Walk {
    model: PriceModel,
    mid: f64,
    stressed: bool,
}

/// Quotes for several instruments from one seed.
pub struct Generator {
    rng: ChaCha8Rng,
    walks: Vec<Walk>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("instruments", &self.walks.len())
            .finish()
    }
}

impl Generator {
    pub fn new(seed: u64, models: Vec<PriceModel>) -> Generator {
        Generator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            walks: models
                .into_iter()
                .map(|model| Walk {
                    mid: model.start_mid,
                    model,
                    stressed: false,
                })
                .collect(),
        }
    }

    /// One quote per instrument per step, `step_ms` apart from `start_ms`.
    pub fn quotes(&mut self, start_ms: i64, step_ms: i64, steps: usize) -> Vec<Quote> {
        let normal = Normal::new(0.0, 1.0).expect("a standard normal");
        let mut out = Vec::with_capacity(steps * self.walks.len());
        for step in 0..steps {
            let ts_ms = start_ms + step as i64 * step_ms;
            for walk in &mut self.walks {
                let m = &walk.model;
                let u: f64 = StandardUniform.sample(&mut self.rng);
                if u < m.switch_chance {
                    walk.stressed = !walk.stressed;
                }
                let vol = if walk.stressed {
                    m.stressed_vol
                } else {
                    m.calm_vol
                };
                let z: f64 = normal.sample(&mut self.rng);
                let mut ret = m.drift - vol * vol / 2.0 + vol * z;
                let j: f64 = StandardUniform.sample(&mut self.rng);
                if j < m.jump_chance {
                    let jz: f64 = normal.sample(&mut self.rng);
                    ret += m.jump_vol * jz;
                }
                walk.mid *= ret.exp();
                let tick = m.instrument.tick_size.raw.max(1);
                // The mid on the tick, never below a few ticks.
                let mid_raw =
                    ((walk.mid * FIXED_SCALAR as f64) / tick as f64).round() as i64 * tick;
                let mid_raw = mid_raw.max(tick * (m.half_spread_ticks + 1));
                let half = m.half_spread_ticks * tick;
                let lots = |rng: &mut ChaCha8Rng| {
                    let u: f64 = StandardUniform.sample(rng);
                    1 + (u * m.max_lots as f64) as u64 % m.max_lots.max(1)
                };
                let (bid_lots, ask_lots) = (lots(&mut self.rng), lots(&mut self.rng));
                let lot = m.instrument.lot_size;
                out.push(Quote {
                    ts_ms,
                    instrument: m.instrument.id.clone(),
                    bid: Price::from_raw(mid_raw - half, m.instrument.price_precision),
                    ask: Price::from_raw(mid_raw + half, m.instrument.price_precision),
                    bid_size: Quantity::from_raw(bid_lots * lot.raw, lot.precision),
                    ask_size: Quantity::from_raw(ask_lots * lot.raw, lot.precision),
                });
            }
        }
        out
    }
}

/// A quote's mid, rounded down to the instrument's tick: what bars are
/// made of.
pub fn mid(q: &Quote, instrument: &Instrument) -> Price {
    let tick = instrument.tick_size.raw.max(1);
    Price::from_raw(
        (q.bid.raw + q.ask.raw) / 2 / tick * tick,
        instrument.price_precision,
    )
}

/// Rolls quote `q` into the bar of `period_ms` being built; returns the
/// bar it closed, if `q` opened the next one. Volume is the quoted sizes.
pub fn roll(
    building: &mut Option<Bar>,
    q: &Quote,
    instrument: &Instrument,
    period_ms: i64,
) -> Option<Bar> {
    let px = mid(q, instrument);
    let size = q.bid_size.raw + q.ask_size.raw;
    let open_ms = q.ts_ms - q.ts_ms.rem_euclid(period_ms);
    match building {
        Some(bar) if bar.ts_ms == open_ms => {
            bar.high = bar.high.max(px);
            bar.low = bar.low.min(px);
            bar.close = px;
            bar.volume.raw += size;
            None
        }
        _ => building.replace(Bar {
            ts_ms: open_ms,
            instrument: instrument.id.clone(),
            open: px,
            high: px,
            low: px,
            close: px,
            volume: Quantity::from_raw(size, instrument.size_precision),
        }),
    }
}

/// Bars of `period_ms` for `instrument` from its quotes' mids (on the
/// tick, rounded down), volume the quoted sizes.
pub fn bars(quotes: &[Quote], instrument: &Instrument, period_ms: i64) -> Vec<Bar> {
    let mut out = Vec::new();
    let mut building = None;
    for q in quotes.iter().filter(|q| q.instrument == instrument.id) {
        out.extend(roll(&mut building, q, instrument, period_ms));
    }
    out.extend(building);
    out
}

/// sha256 of the quotes as CSV lines: the same data, the same hex.
pub fn fingerprint(quotes: &[Quote]) -> String {
    let mut h = Sha256::new();
    for q in quotes {
        h.update(
            format!(
                "{},{},{},{},{},{}\n",
                q.ts_ms, q.instrument, q.bid, q.ask, q.bid_size, q.ask_size
            )
            .as_bytes(),
        );
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a CSV of bars was refused: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column} ({name}): {reason}")]
pub struct CsvError {
    pub line: usize,
    pub column: usize,
    pub name: &'static str,
    pub reason: String,
}

/// The columns a bars CSV has, in order.
pub const BAR_COLUMNS: [&str; 6] = ["ts_ms", "open", "high", "low", "close", "volume"];

/// Reads OHLCV bars for `instrument`: a header line naming
/// [`BAR_COLUMNS`], then one bar a line, timestamps strictly rising,
/// prices on the instrument's precision and tick, `low ≤ open, close ≤
/// high`. The first fault refuses the whole file.
pub fn parse_bars_csv(instrument: &Instrument, text: &str) -> Result<Vec<Bar>, CsvError> {
    let err = |line: usize, column: usize, reason: String| CsvError {
        line,
        column,
        name: BAR_COLUMNS
            .get(column.saturating_sub(1))
            .copied()
            .unwrap_or("-"),
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    match lines.next() {
        Some((_, header)) if header.split(',').map(str::trim).eq(BAR_COLUMNS) => {}
        Some((n, _)) => {
            return Err(err(
                n,
                1,
                format!("the header must be {}", BAR_COLUMNS.join(",")),
            ));
        }
        None => return Err(err(1, 1, "the file is empty".into())),
    }
    let mut out: Vec<Bar> = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != BAR_COLUMNS.len() {
            return Err(err(
                n,
                cells.len().min(BAR_COLUMNS.len()) + 1,
                format!("{} columns; a bar has {}", cells.len(), BAR_COLUMNS.len()),
            ));
        }
        let ts_ms: i64 = cells[0]
            .parse()
            .map_err(|_| err(n, 1, format!("{:?} is not a whole number of ms", cells[0])))?;
        if let Some(last) = out.last()
            && ts_ms <= last.ts_ms
        {
            return Err(err(
                n,
                1,
                format!("{ts_ms} is not after the line before ({})", last.ts_ms),
            ));
        }
        let mut prices = [Price::from_raw(0, 0); 4];
        for (i, slot) in prices.iter_mut().enumerate() {
            let column = i + 2;
            let p = Price::parse(BAR_COLUMNS[i + 1], cells[i + 1], instrument.price_precision)
                .map_err(|e| err(n, column, e.reason))?;
            instrument
                .check_price(BAR_COLUMNS[i + 1], p)
                .map_err(|e| err(n, column, e.to_string()))?;
            *slot = p;
        }
        let [open, high, low, close] = prices;
        if low > open.min(close) || high < open.max(close) || low > high {
            return Err(err(
                n,
                3,
                format!("low {low} and high {high} do not hold open {open} and close {close}"),
            ));
        }
        let volume = Quantity::parse("volume", cells[5], instrument.size_precision)
            .map_err(|e| err(n, 6, e.reason))?;
        out.push(Bar {
            ts_ms,
            instrument: instrument.id.clone(),
            open,
            high,
            low,
            close,
            volume,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
