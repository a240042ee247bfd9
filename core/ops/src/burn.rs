//! Spend burn rate: how fast a tenant spends its budget, against the
//! pace that would make the budget last the burn horizon (30 days, the
//! window the burn rates of Google's SRE workbook are tuned for). A
//! multiwindow, multi-burn-rate alert: a pair fires when both its long
//! and its short window burn at least its factor (the long window says it
//! is no blip, the short one that it still goes on, so the alert resolves
//! within minutes of the spend stopping). 14.4× over an hour is 2% of the
//! budget in that hour; 6× over six hours is 5%.
//!
//! A budget is a cap on what a tenant spends in all; a tenant with none
//! has nothing to burn, and one at its budget is refused new work
//! (`OshalBudgetExhausted` says so). The history is what the adapter
//! samples of the scheduler's books, every few seconds, kept no longer
//! than the longest window, at most one sample per [`BurnPolicy::step_ms`].
//! A window the history does not cover yet is measured over what it
//! holds, once that reaches the pair's short window (after a restart, a
//! runaway is seen within the short window, not within the long one).
//! Pure logic.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use specta::Type;

use oshal_kernel::clock::UnixMs;

/// One hour, in milliseconds.
const HOUR_MS: i64 = 3_600_000;

/// A long and a short window that must both burn at least `factor`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnPair {
    pub long_ms: i64,
    pub short_ms: i64,
    pub factor: f64,
}

/// The pace a budget is held to, and the pairs that alert on it.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnPolicy {
    /// How long a budget is meant to last.
    pub horizon_ms: i64,
    /// Tried in order: the fastest burn first.
    pub pairs: Vec<BurnPair>,
}

impl BurnPolicy {
    /// The SRE workbook's pairs over a 30-day horizon: 14.4× over an hour
    /// and five minutes, 6× over six hours and thirty minutes.
    pub fn sre() -> Self {
        Self {
            horizon_ms: 30 * 24 * HOUR_MS,
            pairs: vec![
                BurnPair {
                    long_ms: HOUR_MS,
                    short_ms: 300_000,
                    factor: 14.4,
                },
                BurnPair {
                    long_ms: 6 * HOUR_MS,
                    short_ms: 1_800_000,
                    factor: 6.0,
                },
            ],
        }
    }

    /// The longest window: how far back the history reaches.
    fn keep_ms(&self) -> i64 {
        self.pairs.iter().map(|p| p.long_ms).max().unwrap_or(0)
    }

    /// The least time between two samples kept: a twentieth of the
    /// shortest window (a window's edge is off by at most 5%).
    pub fn step_ms(&self) -> i64 {
        let short = self.pairs.iter().map(|p| p.short_ms).min().unwrap_or(0);
        (short / 20).max(1)
    }

    /// What a budget may spend in an hour at the pace that makes it last
    /// the horizon.
    pub fn sustainable_per_h(&self, budget_nusd: i64) -> i64 {
        let per_h =
            i128::from(budget_nusd) * i128::from(HOUR_MS) / i128::from(self.horizon_ms.max(1));
        i64::try_from(per_h).unwrap_or(i64::MAX)
    }
}

/// A tenant burning its budget: the pair that fired and what it measured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Burning {
    /// The pair's windows, in seconds, and its factor in tenths (144:
    /// 14.4×).
    pub long_secs: u32,
    pub short_secs: u32,
    pub factor_tenths: u32,
    /// The spend rate over each window (over what the history holds of
    /// it, if less), in nano-dollars an hour.
    #[specta(type = specta_typescript::Number)]
    pub long_rate_nusd_per_h: i64,
    #[specta(type = specta_typescript::Number)]
    pub short_rate_nusd_per_h: i64,
    /// The rate that makes the budget last the horizon.
    #[specta(type = specta_typescript::Number)]
    pub sustainable_nusd_per_h: i64,
    /// How long the history measured the long window over, in seconds.
    pub covered_secs: u32,
}

impl Burning {
    /// The short window's burn rate, in tenths (×10).
    pub fn burn_tenths(&self) -> u32 {
        tenths(self.short_rate_nusd_per_h, self.sustainable_nusd_per_h)
    }

    /// Minutes (to the nearest) until `left` nano-dollars are spent at
    /// the short window's rate (`None` when nothing is spent at all).
    pub fn minutes_for(&self, left_nusd: i64) -> Option<u32> {
        let rate = i128::from(self.short_rate_nusd_per_h);
        if rate <= 0 {
            return None;
        }
        let mins = (i128::from(left_nusd.max(0)) * 60 + rate / 2) / rate;
        Some(u32::try_from(mins).unwrap_or(u32::MAX))
    }
}

fn tenths(rate: i64, sustainable: i64) -> u32 {
    if sustainable <= 0 {
        return u32::MAX;
    }
    let x = i128::from(rate.max(0)) * 10 / i128::from(sustainable);
    u32::try_from(x).unwrap_or(u32::MAX)
}

/// Each tenant's spend as sampled, oldest first.
#[derive(Debug, Default)]
pub struct SpendHistory {
    samples: BTreeMap<String, VecDeque<(UnixMs, i64)>>,
}

impl SpendHistory {
    /// Records what `tenant` has spent at `at_ms`. A sample closer than
    /// the policy's step to the one before replaces it (the newest spend
    /// is always known); a spend lower than the last starts the history
    /// again (the books were read back from elsewhere).
    pub fn record(&mut self, policy: &BurnPolicy, tenant: &str, at_ms: UnixMs, spent_nusd: i64) {
        let h = self.samples.entry(tenant.to_owned()).or_default();
        if let Some(&(last_at, last_spent)) = h.back() {
            if at_ms < last_at || spent_nusd < last_spent {
                h.clear();
            } else if h.len() >= 2 && at_ms - h[h.len() - 2].0 < policy.step_ms() {
                h.pop_back();
            }
        }
        h.push_back((at_ms, spent_nusd));
        // Keep one sample at or before the longest window's edge.
        let edge = at_ms - policy.keep_ms();
        while h.len() >= 2 && h[1].0 <= edge {
            h.pop_front();
        }
    }

    /// Keeps only the tenants `keep` says to (those with a budget now).
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.samples.retain(|t, _| keep(t));
    }

    /// The spend rate of `tenant` over the `window_ms` before its newest
    /// sample (over what the history holds, if less), in nano-dollars an
    /// hour, with the time it was measured over; `None` when the history
    /// holds less than `least_ms`.
    fn rate(&self, tenant: &str, window_ms: i64, least_ms: i64) -> Option<(i64, i64)> {
        let h = self.samples.get(tenant)?;
        let &(now, spent) = h.back()?;
        let edge = now - window_ms;
        let &(from_at, from_spent) = h.iter().rev().find(|(at, _)| *at <= edge).or(h.front())?;
        let over = now - from_at;
        if over < least_ms || over <= 0 {
            return None;
        }
        let per_h = i128::from(spent - from_spent) * i128::from(HOUR_MS) / i128::from(over);
        Some((i64::try_from(per_h).unwrap_or(i64::MAX), over))
    }

    /// Whether the history of `tenant` covers the shortest short window of
    /// `policy`, so that [`SpendHistory::burning`]'s `None` means calm and
    /// not "not measured yet" (after a restart, say).
    pub fn measured(&self, policy: &BurnPolicy, tenant: &str) -> bool {
        let least = policy.pairs.iter().map(|p| p.short_ms).min().unwrap_or(0);
        self.samples
            .get(tenant)
            .and_then(|h| Some(h.back()?.0 - h.front()?.0))
            .is_some_and(|held| held >= least)
    }

    /// Whether `tenant` burns its `budget_nusd` (having spent
    /// `spent_nusd` of it) past a pair of `policy`: the first pair whose
    /// both windows do, or `None`. A tenant at its budget is not burning
    /// it: it is refused new work.
    pub fn burning(
        &self,
        policy: &BurnPolicy,
        tenant: &str,
        budget_nusd: i64,
        spent_nusd: i64,
    ) -> Option<Burning> {
        if budget_nusd <= 0 || spent_nusd >= budget_nusd {
            return None;
        }
        let sustainable = policy.sustainable_per_h(budget_nusd).max(1);
        policy.pairs.iter().find_map(|p| {
            let (long, covered) = self.rate(tenant, p.long_ms, p.short_ms)?;
            let (short, _) = self.rate(tenant, p.short_ms, p.short_ms)?;
            let at_least = |rate: i64| rate as f64 >= p.factor * sustainable as f64;
            (at_least(long) && at_least(short)).then(|| Burning {
                long_secs: secs(p.long_ms),
                short_secs: secs(p.short_ms),
                factor_tenths: (p.factor * 10.0).round() as u32,
                long_rate_nusd_per_h: long,
                short_rate_nusd_per_h: short,
                sustainable_nusd_per_h: sustainable,
                covered_secs: secs(covered),
            })
        })
    }
}

/// Whole seconds of `ms`.
fn secs(ms: i64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

/// A window, as a person reads it: `1 hour`, `5 minutes`, `4 seconds`.
pub fn window(secs: u32) -> String {
    let (n, unit) = match secs {
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    /// $30 a month is $1 a day: 41,666,666 nano-dollars an hour.
    const BUDGET: i64 = 30_000_000_000;

    /// Samples every 15 s from `from` to `to` (minutes), spending `per_min`
    /// nano-dollars a minute, starting at `spent`.
    fn spend(h: &mut SpendHistory, p: &BurnPolicy, from: i64, to: i64, per_min: i64, spent: i64) {
        let mut at = from * MIN;
        while at <= to * MIN {
            h.record(p, "acme", at, spent + (at - from * MIN) * per_min / MIN);
            at += 15_000;
        }
    }

    #[test]
    fn a_steady_pace_does_not_burn_and_a_runaway_does() {
        let p = BurnPolicy::sre();
        assert_eq!(p.sustainable_per_h(BUDGET), 41_666_666);
        let mut h = SpendHistory::default();
        // Twice the sustainable pace for two hours: within budget.
        spend(&mut h, &p, 0, 120, 2 * 41_666_666 / 60, 0);
        assert_eq!(h.burning(&p, "acme", BUDGET, 100), None);
        // Then $1 a minute (1,440×) for ten minutes.
        let was = 120 * 2 * 41_666_666 / 60;
        spend(&mut h, &p, 120, 130, 1_000_000_000, was);
        let b = h.burning(&p, "acme", BUDGET, was).expect("a runaway burns");
        assert_eq!(
            (b.long_secs, b.short_secs, b.factor_tenths),
            (3600, 300, 144)
        );
        assert_eq!(
            (window(b.long_secs), window(b.short_secs)),
            ("1 hour".into(), "5 minutes".into())
        );
        assert_eq!(b.short_rate_nusd_per_h, 60_000_000_000);
        assert!(b.burn_tenths() >= 14_000, "{b:?}");
        assert!(
            b.long_rate_nusd_per_h < b.short_rate_nusd_per_h,
            "the hour holds 50 minutes of the old pace: {b:?}"
        );
        assert_eq!(b.covered_secs, 3600);
        // $1.40 left lasts 1.4 minutes at $60 an hour.
        assert_eq!(b.minutes_for(1_400_000_000), Some(1));
        assert_eq!(b.minutes_for(1_600_000_000), Some(2));
    }

    #[test]
    fn the_short_window_ends_the_alert_soon_after_the_spend_stops() {
        let p = BurnPolicy::sre();
        let mut h = SpendHistory::default();
        spend(&mut h, &p, 0, 30, 1_000_000_000, 0);
        assert!(h.burning(&p, "acme", BUDGET * 10, 0).is_some());
        // Nothing spent for six minutes: the hour still burns, its five
        // minutes do not; six hours burn, and so do their thirty minutes.
        let spent = 30 * 1_000_000_000;
        spend(&mut h, &p, 30, 36, 0, spent);
        let slow = h.burning(&p, "acme", BUDGET * 10, spent).unwrap();
        assert_eq!((slow.long_secs, slow.short_secs), (21_600, 1_800));
        spend(&mut h, &p, 36, 61, 0, spent);
        assert_eq!(h.burning(&p, "acme", BUDGET * 10, spent), None);
    }

    #[test]
    fn a_history_shorter_than_the_short_window_says_nothing() {
        let p = BurnPolicy::sre();
        let mut h = SpendHistory::default();
        spend(&mut h, &p, 0, 4, 1_000_000_000, 0);
        assert_eq!(h.burning(&p, "acme", BUDGET, 0), None, "4 minutes < 5");
        assert!(!h.measured(&p, "acme"));
        spend(&mut h, &p, 4, 6, 1_000_000_000, 4_000_000_000);
        assert!(h.measured(&p, "acme"));
        let b = h.burning(&p, "acme", BUDGET, 0).expect("6 minutes cover 5");
        assert_eq!(b.covered_secs, 360, "the hour measured over what is held");
        assert_eq!(window(4), "4 seconds");
    }

    #[test]
    fn no_budget_to_burn_or_none_left_is_no_burn() {
        let p = BurnPolicy::sre();
        let mut h = SpendHistory::default();
        spend(&mut h, &p, 0, 30, 1_000_000_000, 0);
        assert_eq!(h.burning(&p, "acme", 0, 0), None);
        assert_eq!(h.burning(&p, "acme", BUDGET, BUDGET), None);
        assert_eq!(h.burning(&p, "globex", BUDGET, 0), None, "no history");
    }

    #[test]
    fn the_history_is_bounded_and_restarts_on_a_lower_spend() {
        let p = BurnPolicy::sre();
        let mut h = SpendHistory::default();
        // A sample a second for seven hours.
        for s in 0..7 * 3600 {
            h.record(&p, "acme", s * 1000, s);
        }
        let held = h.samples["acme"].len();
        // Six hours at about one per step (15 s), not 21,600.
        assert!((1440..=1560).contains(&held), "{held}");
        h.record(&p, "acme", 7 * 3600 * 1000, 5);
        assert_eq!(h.samples["acme"].len(), 1);
        h.retain(|t| t != "acme");
        assert!(h.samples.is_empty());
    }
}
