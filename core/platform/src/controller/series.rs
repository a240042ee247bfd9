//! The last two minutes, second by second, as this controller committed
//! them: tickets finished and money spent. A surface that opens late
//! draws its charts from here instead of from zero; it then goes on from
//! the live events.
//!
//! Fed by the writer's commit hook (what is durable, not what was
//! proposed), in the second of the commit on the controller's clock; a
//! second since the controller started in which nothing finished is a
//! zero, one before it started is not in the series at all.

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::clock::UnixMs;

/// How many seconds are kept.
pub const SECONDS: usize = 120;

/// One second of the series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema)]
pub struct Second {
    /// Its start, unix ms (a multiple of 1000).
    #[specta(type = specta_typescript::Number)]
    pub t_ms: UnixMs,
    /// Tickets that reached a terminal state (succeeded, dead, cancelled).
    pub finished: u32,
    /// What the ledger rows committed in it cost, in nano-dollars.
    #[specta(type = specta_typescript::Number)]
    pub cost_nusd: i64,
}

/// The ring of seconds, oldest first.
#[derive(Debug, Default)]
pub struct Series {
    seconds: std::collections::VecDeque<Second>,
    /// The second the controller started in (`None`: not told).
    since: Option<UnixMs>,
}

fn second_of(at_ms: UnixMs) -> UnixMs {
    at_ms - at_ms.rem_euclid(1000)
}

impl Series {
    /// The controller started at `at_ms`: the series counts from there.
    pub fn started(&mut self, at_ms: UnixMs) {
        self.since = Some(second_of(at_ms));
    }

    /// Adds a commit's finishes and cost to the second `at_ms` falls in.
    pub fn add(&mut self, at_ms: UnixMs, finished: u32, cost_nusd: i64) {
        let t_ms = second_of(at_ms);
        match self.seconds.back_mut() {
            // Its own second, or (a clock that stepped back) the latest.
            Some(last) if last.t_ms >= t_ms => {
                last.finished += finished;
                last.cost_nusd += cost_nusd;
            }
            _ => {
                self.seconds.push_back(Second {
                    t_ms,
                    finished,
                    cost_nusd,
                });
                while self.seconds.len() > SECONDS {
                    self.seconds.pop_front();
                }
            }
        }
    }

    /// Every second from `now_ms - SECONDS s` (or the start, if later; or
    /// the first commit, if the start was not told) to the one before
    /// `now_ms`'s, quiet ones as zeros.
    pub fn last(&self, now_ms: UnixMs) -> Vec<Second> {
        let current = second_of(now_ms);
        let window = current - SECONDS as i64 * 1000;
        let first = match self.since {
            Some(since) => since.max(window),
            None => match self.seconds.iter().find(|s| s.t_ms >= window) {
                Some(s) => s.t_ms,
                None => return Vec::new(),
            },
        };
        let mut out = Vec::with_capacity(SECONDS);
        let mut recorded = self.seconds.iter().filter(|s| s.t_ms >= first).peekable();
        let mut t = first;
        while t < current {
            match recorded.peek() {
                Some(s) if s.t_ms == t => {
                    out.push(**s);
                    recorded.next();
                }
                _ => out.push(Second {
                    t_ms: t,
                    finished: 0,
                    cost_nusd: 0,
                }),
            }
            t += 1000;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_fold_into_their_second_and_quiet_seconds_are_zeros() {
        let mut s = Series::default();
        assert!(s.last(10_000).is_empty(), "nothing before the first commit");
        s.add(5_100, 2, 10);
        s.add(5_900, 1, 5);
        s.add(8_000, 4, 0);
        s.add(7_500, 1, 1); // the clock stepped back: the latest second
        let got = s.last(9_200);
        let want = [(5_000, 3, 15), (6_000, 0, 0), (7_000, 0, 0), (8_000, 5, 1)];
        assert_eq!(
            got.iter()
                .map(|x| (x.t_ms, x.finished, x.cost_nusd))
                .collect::<Vec<_>>(),
            want
        );
        assert_eq!(s.last(8_500).len(), 3, "the current second is not over");
        let quiet = s.last(12_500);
        assert_eq!(quiet.len(), 7, "quiet seconds up to now are zeros");
        assert!(quiet[4..].iter().all(|x| x.finished == 0));
    }

    #[test]
    fn the_series_counts_from_the_start_not_the_first_commit() {
        let mut s = Series::default();
        s.started(2_300);
        assert_eq!(s.last(5_100).len(), 3, "2, 3 and 4 s: quiet, not absent");
        s.add(4_000, 1, 0);
        let got = s.last(500_000);
        assert_eq!(got.len(), SECONDS, "a long quiet run is still a series");
        assert!(got.iter().all(|x| x.finished == 0));
    }

    #[test]
    fn only_the_last_two_minutes_are_kept() {
        let mut s = Series::default();
        for i in 0..500 {
            s.add(i * 1000, 1, 1);
        }
        let got = s.last(500_000);
        assert_eq!(got.len(), SECONDS);
        assert_eq!(got[0].t_ms, 380_000);
        assert!(got.iter().all(|x| x.finished == 1));
    }
}
