//! One tool call, named: which bot, for which tenant's ticket and attempt,
//! calls which operation of which connector. What the gate decides on, the
//! broker binds a token to and the audit trail records. Plain data.

use crate::ticket::{BotId, TenantId, TicketId};

/// One tool call as the gate sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CallRef {
    pub bot: BotId,
    /// The tenant of the ticket; its audit rows and writes are that
    /// tenant's. `None` only for the Security Center's probes, which act
    /// for no tenant (and never reach a write).
    pub tenant: Option<TenantId>,
    pub ticket: TicketId,
    pub attempt: u32,
    pub connector: String,
    pub operation: String,
}
