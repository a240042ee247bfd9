//! `oshal connectors`: list connectors, import and approve catalog entries,
//! grant and revoke, store a credential, read the audit trail and the
//! effect ledger, all through the API.

use anyhow::{Context, Result};
use clap::Subcommand;
use oshal_core::api::client::Client;
use oshal_core::api::{GrantQuery, TrailQuery};
use oshal_core::connector::NewGrant;
use std::path::{Path, PathBuf};

use crate::args::{ActionArgs, json, print};

pub type Args = ActionArgs<Action>;

#[derive(Subcommand)]
pub enum Action {
    /// Every connector, curated and catalog.
    List,
    /// Imported catalog entries, approved or not.
    Catalog,
    /// Import an OpenAPI 3 document (JSON) as a disabled catalog entry.
    Import { file: PathBuf },
    /// Approve a catalog entry, which enables it.
    Approve { id: String },
    /// Live grants, optionally of one bot.
    Grants {
        #[arg(long)]
        bot: Option<String>,
    },
    /// Let a bot call operations of a connector.
    Grant {
        #[arg(long)]
        bot: String,
        #[arg(long)]
        connector: String,
        #[arg(long, value_delimiter = ',', required = true)]
        operations: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// A numeric ceiling on a parameter, `amount<=100` (repeatable).
        #[arg(long = "condition")]
        conditions: Vec<String>,
        #[arg(long)]
        rate_per_minute: Option<u32>,
        #[arg(long)]
        budget_calls: Option<u32>,
    },
    /// Revoke a grant.
    Revoke { grant: String },
    /// Store a connector's credential (a JSON object in FILE; never a flag).
    Credential { id: String, file: PathBuf },
    /// The audit trail (decisions, credential reads, refreshes, revocations).
    Audit {
        #[arg(long)]
        ticket: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
    /// The effect ledger: every write sent to an outside system.
    Effects {
        #[arg(long)]
        ticket: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
}

impl Action {
    /// Does the action; its reply as JSON (`null` for none).
    async fn call(self, client: &Client) -> Result<serde_json::Value> {
        let read_json = |file: &Path| -> Result<serde_json::Value> {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
        };
        let trail = |ticket: Option<String>, limit: u32| TrailQuery {
            ticket,
            limit: Some(limit.to_string()),
        };
        match self {
            Self::List => json(client.connectors().await),
            Self::Catalog => json(client.catalog().await),
            Self::Import { file } => json(client.import_catalog(&read_json(&file)?).await),
            Self::Approve { id } => json(client.approve_catalog(id).await),
            Self::Grants { bot } => json(client.grants(&GrantQuery { bot }).await),
            Self::Grant {
                bot,
                connector,
                operations,
                scopes,
                conditions,
                rate_per_minute,
                budget_calls,
            } => {
                let conditions = conditions
                    .iter()
                    .map(|c| {
                        let (param, max) = c.split_once("<=").with_context(|| {
                            format!("--condition {c:?}: write it as param<=max")
                        })?;
                        let max: f64 = max.trim().parse().with_context(|| {
                            format!("--condition {c:?}: {max:?} is not a number")
                        })?;
                        Ok(serde_json::json!({ "param": param.trim(), "max": max }))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let grant: NewGrant = serde_json::from_value(serde_json::json!({
                    "bot": bot, "connector": connector, "operations": operations, "scopes": scopes,
                    "conditions": conditions, "rate_per_minute": rate_per_minute, "budget_calls": budget_calls,
                }))
                .context("the grant")?;
                json(client.add_grant(&grant).await)
            }
            Self::Revoke { grant } => json(client.revoke_grant(grant).await),
            Self::Credential { id, file } => {
                json(client.put_credential(id, &read_json(&file)?).await)
            }
            Self::Audit { ticket, limit } => json(client.audit(&trail(ticket, limit)).await),
            Self::Effects { ticket, limit } => json(client.effects(&trail(ticket, limit)).await),
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    print(&args.action.call(&args.api.client()?).await?)
}
