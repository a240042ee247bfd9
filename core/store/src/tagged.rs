//! Tickets tagged by a prefix of their idempotency key, and clearing the
//! walk-through's. The desktop's guided tour submits its tickets under keys
//! `tour:<tour id>:<step>`, so they can be listed, cancelled and, where the
//! store allows it, removed: [`Store::clear_tagged`](crate::Store::clear_tagged).
//! A key is its submitter's to choose, so a clear takes one tour's whole tag
//! (its UUID), within the caller's tenant: nothing shorter.
//! A removal takes a ticket's row and its events; its ledger rows stay
//! (what it cost was spent, and a budget has counted it).

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::ticket::TenantId;
use crate::{MAX_PAGE, Store, StoreError, TicketQuery};

/// What every walk-through tag starts with: the only tickets a clear takes.
pub const TOUR_PREFIX: &str = "tour:";
/// The longest tag.
pub const MAX_TAG: usize = 64;

/// A prefix of idempotency keys: 1..=64 of a-z, 0-9, ':' and '-', starting
/// with a letter or digit. Matched exactly (case and all), never as a
/// pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(String);

impl Tag {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > MAX_TAG {
            return Err(format!(
                "a tag is 1..={MAX_TAG} characters; this one has {}",
                s.len()
            ));
        }
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '-';
        if let Some(bad) = s.chars().find(|&c| !ok(c)) {
            return Err(format!(
                "{bad:?} cannot be in a tag (a-z, 0-9, ':' and '-')"
            ));
        }
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err("a tag starts with a letter or a digit".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it is one walk-through's whole tag, `tour:<uuid>:` (the
    /// only tag a clear takes): a shorter prefix would reach every tour's
    /// tickets, or keys that merely begin alike.
    pub fn is_tour(&self) -> bool {
        self.0
            .strip_prefix(TOUR_PREFIX)
            .and_then(|rest| rest.strip_suffix(':'))
            .is_some_and(|id| id.len() == 36 && uuid::Uuid::parse_str(id).is_ok())
    }
}

/// What clearing a tag's tickets did.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Type, utoipa::ToSchema,
)]
pub struct Cleared {
    /// Unfinished tickets cancelled before the clear (by the controller;
    /// a store cancels nothing).
    pub cancelled: u32,
    /// Ended tickets removed with their history (their ledger rows stay:
    /// what they cost was spent).
    pub removed: u32,
    /// Tickets not yet ended, left as they are: cancel them first.
    pub unfinished: u32,
    /// Ended tickets kept: this store's history is append-only (a fleet's
    /// PostgreSQL, whose controller role may not delete).
    pub kept: u32,
}

/// What a store that keeps every ticket answers a clear: the tag's
/// tickets counted, the ended as kept, the rest as unfinished.
pub(crate) async fn count_kept<S: Store + ?Sized>(
    store: &S,
    tag: &Tag,
    only: Option<&TenantId>,
) -> Result<Cleared, StoreError> {
    let mut cleared = Cleared::default();
    let mut query = TicketQuery {
        tenant: only.cloned(),
        tag: Some(tag.clone()),
        limit: MAX_PAGE,
        ..TicketQuery::default()
    };
    loop {
        let page = store.tickets(&query).await?;
        for t in &page.tickets {
            match t.state.is_terminal() {
                true => cleared.kept += 1,
                false => cleared.unfinished += 1,
            }
        }
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return Ok(cleared),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_a_plain_prefix_and_says_what_is_wrong() {
        assert!(
            Tag::parse("tour:0193a0c4-1b2c-7def-8000-000000000000:")
                .unwrap()
                .is_tour()
        );
        for partial in [
            "tour:",
            "tour:0",
            "tour:0193a0c4-1b2c-7def-8000-000000000000",
            "tour:0193a0c4-1b2c-7def-8000-000000000000:x",
            "tour:booking-00000000000000000000000000000:",
        ] {
            assert!(!Tag::parse(partial).unwrap().is_tour(), "{partial}");
        }
        assert!(!Tag::parse("batch-7").unwrap().is_tour());
        assert!(Tag::parse("").unwrap_err().contains("1..=64"));
        assert!(Tag::parse(&"a".repeat(65)).unwrap_err().contains("has 65"));
        assert!(Tag::parse("tour%").unwrap_err().contains("'%'"));
        assert!(Tag::parse("Tour:").unwrap_err().contains("'T'"));
        assert!(Tag::parse(":tour").unwrap_err().contains("starts with"));
    }
}
