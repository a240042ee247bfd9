//! Signals: what a strategy concludes from a window of bars, as LEAN's
//! Insight says it (instrument, direction, period, magnitude, confidence,
//! weight, source), with the reference price it saw and a hash of its
//! inputs, so the same window always gives the same signal and a replay can
//! check it did.
//!
//! Three strategies ship: an EMA crossover, a mean-reversion z-score and a
//! channel breakout. Each is a pure function of its parameters and the
//! bars; a window too short for it is a typed refusal, not a flat signal.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fixed::{FIXED_SCALAR, Price};
use crate::market::Bar;

/// Which way the strategy expects the price to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Direction {
    Up,
    Down,
    Flat,
}

/// A strategy and its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Strategy {
    /// Up when the fast EMA of closes crosses above the slow one on the
    /// last bar, down when below.
    EmaCross { fast: usize, slow: usize },
    /// Down when the last close is `entry_z` standard deviations above the
    /// window's mean, up when as far below.
    ZScore { window: usize, entry_z: f64 },
    /// Up when the last close breaks above the previous `window` bars'
    /// highs, down when below their lows.
    Breakout { window: usize },
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Self::EmaCross { .. } => "ema_cross",
            Self::ZScore { .. } => "z_score",
            Self::Breakout { .. } => "breakout",
        }
    }

    /// Whether its parameters are in range; a refusal names the one that
    /// is not.
    pub fn check(&self) -> Result<(), SignalError> {
        let bad = |field, value: String, range| SignalError::BadParameter {
            strategy: self.name(),
            field,
            value,
            range,
        };
        match self {
            Strategy::EmaCross { fast, slow } if *fast == 0 || fast >= slow => {
                Err(bad("fast", fast.to_string(), "1..slow"))
            }
            Strategy::ZScore { window, .. } if *window < 2 => {
                Err(bad("window", window.to_string(), "2.."))
            }
            Strategy::ZScore { entry_z, .. } if !(entry_z.is_finite() && *entry_z > 0.0) => {
                Err(bad("entry_z", entry_z.to_string(), "above 0"))
            }
            Strategy::Breakout { window } if *window == 0 => {
                Err(bad("window", window.to_string(), "1.."))
            }
            _ => Ok(()),
        }
    }

    /// Bars the strategy needs.
    pub fn needs(&self) -> usize {
        match self {
            Self::EmaCross { slow, .. } => slow + 1,
            Self::ZScore { window, .. } => *window,
            Self::Breakout { window } => window + 1,
        }
    }
}

/// The version every signal names, so a change of logic is visible.
pub const STRATEGY_VERSION: &str = "1";

/// LEAN's Insight, with what it was drawn from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Insight {
    pub instrument: String,
    pub direction: Direction,
    /// How long the view holds, from the last bar's time.
    pub period_ms: i64,
    /// Expected move, as a fraction of the reference price.
    pub magnitude: f64,
    /// 0..=1.
    pub confidence: f64,
    /// The share of capital it asks for, 0..=1.
    pub weight: f64,
    pub source: String,
    pub source_version: String,
    pub generated_ms: i64,
    /// The last close the strategy saw.
    pub reference_price: Price,
    /// sha256 of the strategy, its parameters and the bars it read.
    pub inputs_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error("{strategy}: {got} bars; it needs at least {needs}")]
    TooFewBars {
        strategy: &'static str,
        got: usize,
        needs: usize,
    },
    #[error("{strategy}: {field} {value} is outside {range}")]
    BadParameter {
        strategy: &'static str,
        field: &'static str,
        value: String,
        range: &'static str,
    },
    #[error("bars: they are not all of one instrument, in time order")]
    MixedBars,
}

fn close(bar: &Bar) -> f64 {
    bar.close.raw as f64 / FIXED_SCALAR as f64
}

fn ema(values: &[f64], n: usize) -> Vec<f64> {
    let k = 2.0 / (n as f64 + 1.0);
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        out.push(if i == 0 {
            *v
        } else {
            v * k + out[i - 1] * (1.0 - k)
        });
    }
    out
}

fn inputs_hash(strategy: &Strategy, bars: &[Bar]) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(strategy).unwrap_or_default());
    for b in bars {
        h.update(
            format!(
                "{},{},{},{},{},{},{}\n",
                b.ts_ms, b.instrument, b.open, b.high, b.low, b.close, b.volume
            )
            .as_bytes(),
        );
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `strategy` over the last bars of `bars` (one instrument, in time
/// order); the view holds for `period_ms`.
pub fn generate(strategy: &Strategy, bars: &[Bar], period_ms: i64) -> Result<Insight, SignalError> {
    strategy.check()?;
    let name = strategy.name();
    let needs = strategy.needs();
    if bars.len() < needs {
        return Err(SignalError::TooFewBars {
            strategy: name,
            got: bars.len(),
            needs,
        });
    }
    let window = &bars[bars.len() - needs..];
    let last = window.last().expect("needs is at least 1");
    if window
        .windows(2)
        .any(|w| w[0].instrument != w[1].instrument || w[0].ts_ms >= w[1].ts_ms)
    {
        return Err(SignalError::MixedBars);
    }
    let closes: Vec<f64> = window.iter().map(close).collect();
    let price = *closes.last().expect("a window is not empty");
    let (direction, magnitude, confidence) = match strategy {
        Strategy::EmaCross { fast, slow } => {
            let (f, s) = (ema(&closes, *fast), ema(&closes, *slow));
            let n = closes.len();
            let (before, now) = (f[n - 2] - s[n - 2], f[n - 1] - s[n - 1]);
            let gap = (now / price).abs();
            match (before <= 0.0, now > 0.0, before >= 0.0, now < 0.0) {
                (true, true, _, _) => (Direction::Up, gap, (gap * 200.0).min(1.0)),
                (_, _, true, true) => (Direction::Down, gap, (gap * 200.0).min(1.0)),
                _ => (Direction::Flat, 0.0, 0.0),
            }
        }
        Strategy::ZScore { entry_z, .. } => {
            let mean = closes.iter().sum::<f64>() / closes.len() as f64;
            let var =
                closes.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (closes.len() - 1) as f64;
            let sd = var.sqrt();
            let z = if sd > 0.0 { (price - mean) / sd } else { 0.0 };
            let magnitude = ((mean - price) / price).abs();
            let confidence = (z.abs() / (2.0 * entry_z)).min(1.0);
            if z >= *entry_z {
                (Direction::Down, magnitude, confidence)
            } else if z <= -entry_z {
                (Direction::Up, magnitude, confidence)
            } else {
                (Direction::Flat, 0.0, 0.0)
            }
        }
        Strategy::Breakout { .. } => {
            let prior = &window[..window.len() - 1];
            let high = prior.iter().map(|b| b.high).max().expect("a prior bar");
            let low = prior.iter().map(|b| b.low).min().expect("a prior bar");
            let range = (high.raw - low.raw) as f64 / FIXED_SCALAR as f64;
            let magnitude = if price > 0.0 { range / price } else { 0.0 };
            if last.close > high {
                (Direction::Up, magnitude, 0.6)
            } else if last.close < low {
                (Direction::Down, magnitude, 0.6)
            } else {
                (Direction::Flat, 0.0, 0.0)
            }
        }
    };
    let weight = if direction == Direction::Flat {
        0.0
    } else {
        (confidence * 0.1).min(0.1)
    };
    Ok(Insight {
        instrument: last.instrument.clone(),
        direction,
        period_ms,
        magnitude,
        confidence,
        weight,
        source: name.to_owned(),
        source_version: STRATEGY_VERSION.to_owned(),
        generated_ms: last.ts_ms,
        reference_price: last.close,
        inputs_hash: inputs_hash(strategy, window),
    })
}

#[cfg(test)]
mod tests;
