//! The free text stored with tickets, as the secret scan reads it.

use crate::ticket::TicketId;

/// One stored text of a ticket: `field` is `payload`, `result`, `error` or
/// `event <seq>`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredText {
    pub ticket: TicketId,
    pub field: String,
    pub text: String,
}

impl StoredText {
    /// The texts of one ticket's row, skipping the absent ones.
    pub(crate) fn of_row(
        ticket: TicketId,
        payload: String,
        result: Option<String>,
        error: Option<String>,
    ) -> impl Iterator<Item = StoredText> {
        [
            ("payload", Some(payload)),
            ("result", result),
            ("error", error),
        ]
        .into_iter()
        .filter_map(move |(field, text)| {
            text.map(|text| StoredText {
                ticket,
                field: field.to_owned(),
                text,
            })
        })
    }
}
