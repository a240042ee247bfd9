//! Triage: what one scan does to the findings already known, as a pure
//! function of what was known and what was seen.
//!
//! ```text
//!            seen, unknown ──▶ open (a ticket is filed)
//!  open ──── seen ──────────▶ open (unchanged: last seen moves, nothing else)
//!  open ──── unseen N scans ▶ resolved
//!  resolved ─ seen ─────────▶ open again (reopened: a follow-up ticket)
//!  suppressed ─ until passed ▶ open (or resolved, by the same N-scan rule)
//! ```
//!
//! A check that could not run (or does not apply here) says nothing about
//! its findings: the caller leaves them out, and they keep their state.
//! A scan only speaks for its own source: Oshal's scan never resolves what
//! Trivy reported, and an imported Trivy run only resolves Trivy's.

use std::collections::{BTreeMap, BTreeSet};

use crate::clock::UnixMs;

use super::FindingState;

/// What triage needs to know of a finding already stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    /// The rule that found it: a rule whose check could not run this scan
    /// is left out of triage, so an outage never resolves what it hides.
    pub rule: String,
    pub state: FindingState,
    pub clean_scans: u32,
    pub suppressed_until: Option<UnixMs>,
}

/// What happens to one finding in one scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// First seen: stored open, and a ticket filed.
    New,
    /// Seen again while open or suppressed: only `last_seen` moves.
    Unchanged,
    /// Seen again after it was resolved: open, with a follow-up ticket.
    Reopened,
    /// Its suppression expired and it is still there: open again.
    Unsuppressed,
    /// Not seen, not yet for `resolve_after` scans in a row.
    Clean,
    /// Not seen for `resolve_after` scans in a row: resolved.
    Resolved,
}

/// The change for every finding the scan touches, by fingerprint.
/// `resolve_after` is at least 1.
pub fn triage(
    known: &BTreeMap<String, Known>,
    seen: &BTreeSet<String>,
    resolve_after: u32,
    now: UnixMs,
) -> BTreeMap<String, Change> {
    let mut out = BTreeMap::new();
    for fp in seen {
        let change = match known.get(fp) {
            None => Change::New,
            Some(k) => match k.state {
                FindingState::Open => Change::Unchanged,
                FindingState::Resolved => Change::Reopened,
                FindingState::Suppressed if k.suppressed_until.is_some_and(|u| u <= now) => {
                    Change::Unsuppressed
                }
                FindingState::Suppressed => Change::Unchanged,
            },
        };
        out.insert(fp.clone(), change);
    }
    for (fp, k) in known {
        if seen.contains(fp) || k.state == FindingState::Resolved {
            continue;
        }
        let change = if k.clean_scans + 1 >= resolve_after.max(1) {
            Change::Resolved
        } else {
            Change::Clean
        };
        out.insert(fp.clone(), change);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(state: FindingState, clean: u32) -> Known {
        Known {
            rule: "r".into(),
            state,
            clean_scans: clean,
            suppressed_until: None,
        }
    }

    fn one(k: Option<Known>, seen: bool, after: u32) -> Option<Change> {
        let known: BTreeMap<String, Known> = k.into_iter().map(|k| ("f".into(), k)).collect();
        let seen: BTreeSet<String> = seen.then(|| "f".to_owned()).into_iter().collect();
        triage(&known, &seen, after, 1_000).get("f").copied()
    }

    #[test]
    fn the_lifecycle_of_a_finding() {
        use FindingState::*;
        assert_eq!(one(None, true, 2), Some(Change::New));
        assert_eq!(one(None, false, 2), None);
        assert_eq!(one(Some(known(Open, 0)), true, 2), Some(Change::Unchanged));
        assert_eq!(one(Some(known(Open, 0)), false, 2), Some(Change::Clean));
        assert_eq!(one(Some(known(Open, 1)), false, 2), Some(Change::Resolved));
        assert_eq!(one(Some(known(Open, 0)), false, 1), Some(Change::Resolved));
        assert_eq!(one(Some(known(Resolved, 2)), false, 2), None);
        assert_eq!(
            one(Some(known(Resolved, 2)), true, 2),
            Some(Change::Reopened)
        );
        let mut s = known(Suppressed, 0);
        s.suppressed_until = Some(2_000);
        assert_eq!(one(Some(s.clone()), true, 2), Some(Change::Unchanged));
        s.suppressed_until = Some(1_000);
        assert_eq!(one(Some(s.clone()), true, 2), Some(Change::Unsuppressed));
        assert_eq!(one(Some(s), false, 1), Some(Change::Resolved));
    }
}
