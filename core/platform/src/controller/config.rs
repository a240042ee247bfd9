//! How the controller behaves: its limits, backoff, prices and secret
//! rules, with the defaults local mode runs on.

use std::sync::Arc;
use std::time::Duration;

use crate::cost::PriceTable;
use crate::secrets::SecretRules;

/// How the controller behaves.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Entries a bot's lane holds (queued and pending together).
    pub lane_capacity: usize,
    /// Tickets routed to one bot and not yet finished; the routing load limit.
    pub max_in_flight_per_bot: usize,
    /// First retry delay; doubles per attempt up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Create a tenant on its first ticket (local mode) instead of refusing.
    pub auto_create_tenants: bool,
    /// Budget of a tenant created on first use; `None`: no limit.
    pub default_budget_nusd: Option<i64>,
    /// Non-terminal tickets the controller holds before refusing more.
    pub max_live_tickets: usize,
    pub prices: PriceTable,
    /// What counts as a secret: a ticket whose payload holds one is refused
    /// at the door (`SecretRules::guard`), and one in a model's reply or a
    /// failure's error is redacted before it is kept (`SecretRules::redact`).
    pub secret_rules: Arc<SecretRules>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            lane_capacity: 256,
            max_in_flight_per_bot: 64,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            auto_create_tenants: true,
            default_budget_nusd: None,
            max_live_tickets: 500_000,
            prices: PriceTable::builtin(),
            secret_rules: SecretRules::shipped_shared(),
        }
    }
}
