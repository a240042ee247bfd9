//! `oshal tenants`: a running controller's tenants, through the API: list
//! them (budget), pause one (its tickets are admitted and kept, not
//! routed, until resumed; kept across a restart), resume one.

use anyhow::Result;
use clap::Subcommand;
use oshal_core::api::client::Client;

use crate::args::{ActionArgs, json, print};

pub type Args = ActionArgs<Action>;

#[derive(Subcommand)]
pub enum Action {
    /// Every tenant with its budget, as JSON.
    List,
    /// Pause a tenant: its tickets wait (admitted, not routed).
    Pause { tenant: String },
    /// Resume a paused tenant: its kept tickets are routed again.
    Resume { tenant: String },
}

impl Action {
    async fn call(self, client: &Client) -> Result<serde_json::Value> {
        match self {
            Self::List => json(client.tenants().await),
            Self::Pause { tenant } => json(client.pause_tenant(tenant.as_str(), true).await),
            Self::Resume { tenant } => json(client.pause_tenant(tenant.as_str(), false).await),
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    print(&args.action.call(&args.api.client()?).await?)
}
