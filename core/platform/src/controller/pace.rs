//! A bot's pace: how long its model's recent calls took, from the start
//! its bot reported to the result, for the `chat` attempts that ended on
//! their own (succeeded or failed; a cancelled, abandoned or superseded
//! attempt says nothing of the model, and other kinds of work wait on
//! other things: an outside system, ffmpeg, a compiler). The scheduler
//! records, stamped with the controller's clock (a node's clock may be
//! off); the facade reads the median of those that ended within a window:
//! a slow model shows here before its lane's lag says why.
//!
//! Bounded: the newest [`KEPT`] attempts only, so a busy bot costs the same
//! as an idle one. Lost with the controller: it is a recent figure, not a
//! record (the store keeps every transition's time).

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::clock::UnixMs;

/// The most attempts a bot's pace keeps.
pub const KEPT: usize = 128;
/// The window [`Pace::median_since`] is read over by the bots' view.
pub const RECENT_MS: i64 = 5 * 60 * 1000;

#[derive(Debug, Default)]
pub(crate) struct Pace {
    /// (ended at, took ms), oldest first.
    ended: Mutex<VecDeque<(UnixMs, u64)>>,
}

impl Pace {
    /// An attempt that took `took_ms` (a bot's clock that went back
    /// counts it as 0 ms), ended as the controller heard at `ended`.
    pub(crate) fn record(&self, ended: UnixMs, took_ms: i64) {
        let took = u64::try_from(took_ms).unwrap_or(0);
        let mut q = self.ended.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() == KEPT {
            q.pop_front();
        }
        q.push_back((ended, took));
    }

    /// The median time of the attempts that ended at or after `since`
    /// (the lower middle of an even count); `None` when none did.
    pub(crate) fn median_since(&self, since: UnixMs) -> Option<u64> {
        let mut took: Vec<u64> = {
            let q = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            q.iter()
                .filter(|(at, _)| *at >= since)
                .map(|(_, t)| *t)
                .collect()
        };
        if took.is_empty() {
            return None;
        }
        let mid = (took.len() - 1) / 2;
        Some(*took.select_nth_unstable(mid).1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_reads_only_the_window_and_the_newest_attempts() {
        let p = Pace::default();
        assert_eq!(p.median_since(0), None, "no attempt yet");
        p.record(9_000, 9_000); // ended at 9 s: outside a window from 10 s
        for (start, end) in [(10_000, 10_100), (10_000, 13_000), (11_000, 11_200)] {
            p.record(end, end - start);
        }
        assert_eq!(p.median_since(10_000), Some(200));
        assert_eq!(p.median_since(0), Some(200), "100, 200, 3000, 9000");
        assert_eq!(p.median_since(20_000), None, "all aged out");
        // A clock that went back is 0 ms, not a wrapped figure.
        p.record(19_000, -1_000);
        assert_eq!(p.median_since(19_000), Some(0));
        for i in 0..KEPT as i64 {
            p.record(30_000 + i + 50, 50);
        }
        assert_eq!(p.median_since(0), Some(50), "the oldest were dropped");
    }
}
