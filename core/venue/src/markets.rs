//! The markets the venue replays: for each listed instrument and seed, the
//! one-second quotes [`oshal_trading::market::seconds`] draws, the same
//! the desk trading on that seed sees. Drawn once and kept (a few markets
//! at a time), longer when an order comes for a later quote.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use oshal_trading::market::{self, PriceModel, Quote};
use oshal_trading::venue::wire::MAX_TS_MS;

/// Markets kept at once; the one drawn longest ago goes first.
const KEPT: usize = 16;
/// Quotes drawn at least at a time: an hour.
const CHUNK: usize = 3_600;

/// The quotes drawn of each (instrument, seed), with when they were drawn
/// (a counter).
type Drawn = HashMap<(String, u64), (u64, Arc<Vec<Quote>>)>;

#[derive(Debug, Default, Clone)]
pub struct Markets {
    drawn: Arc<Mutex<Drawn>>,
}

impl Markets {
    /// The quote of `model`'s market `seed` at `ts_ms` (a whole second
    /// within [`MAX_TS_MS`], as [`oshal_trading::venue::wire::WireOrder::check`]
    /// has checked).
    pub async fn quote(&self, model: &PriceModel, seed: u64, ts_ms: i64) -> Quote {
        let step = usize::try_from(ts_ms.clamp(0, MAX_TS_MS) / 1_000).unwrap_or(0);
        let key = (model.instrument.id.clone(), seed);
        let have = self.lock().get(&key).map(|(_, q)| q.clone());
        if let Some(quotes) = have.filter(|q| q.len() > step) {
            return quotes[step].clone();
        }
        let most = usize::try_from(MAX_TS_MS / 1_000 + 1).unwrap_or(usize::MAX);
        let steps = (step + 1).next_multiple_of(CHUNK).min(most);
        let model = model.clone();
        let quotes = tokio::task::spawn_blocking(move || market::seconds(seed, model, steps))
            .await
            .expect("drawing quotes does not panic");
        let quotes = Arc::new(quotes);
        let quote = quotes[step].clone();
        let mut drawn = self.lock();
        let tick = drawn.values().map(|(t, _)| *t).max().unwrap_or(0) + 1;
        if drawn.len() >= KEPT
            && !drawn.contains_key(&key)
            && let Some(oldest) = drawn
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
        {
            drawn.remove(&oldest);
        }
        drawn.insert(key, (tick, quotes));
        quote
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Drawn> {
        self.drawn.lock().unwrap_or_else(|p| p.into_inner())
    }
}
