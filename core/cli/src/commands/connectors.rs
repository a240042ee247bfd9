//! `oshal connectors`: list connectors, import and approve catalog entries,
//! grant and revoke, store a credential, read the audit trail and the
//! effect ledger, all through the API.

use anyhow::{Context, Result};
use clap::Subcommand;
use oshal_core::api::client::Client;
use std::path::{Path, PathBuf};

use crate::args::{ApiArgs, api_error};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    api: ApiArgs,
}

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
    async fn call(self, client: &Client) -> Result<serde_json::Value> {
        use reqwest::Method;
        let read_json = |file: &Path| -> Result<serde_json::Value> {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
        };
        let trail = |ticket: Option<String>, limit: u32| {
            let mut q = vec![("limit", limit.to_string())];
            q.extend(ticket.map(|t| ("ticket", t)));
            q
        };
        let r = match self {
            Self::List => {
                client
                    .call(Method::GET, "/api/v1/connectors", &[], None)
                    .await
            }
            Self::Catalog => client.call(Method::GET, "/api/v1/catalog", &[], None).await,
            Self::Import { file } => {
                let doc = read_json(&file)?;
                client
                    .call(Method::POST, "/api/v1/catalog/import", &[], Some(&doc))
                    .await
            }
            Self::Approve { id } => {
                client
                    .call(
                        Method::POST,
                        &format!("/api/v1/catalog/{id}/approve"),
                        &[],
                        None,
                    )
                    .await
            }
            Self::Grants { bot } => {
                let q: Vec<_> = bot.map(|b| ("bot", b)).into_iter().collect();
                client.call(Method::GET, "/api/v1/grants", &q, None).await
            }
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
                let body = serde_json::json!({
                    "bot": bot, "connector": connector, "operations": operations, "scopes": scopes,
                    "conditions": conditions, "rate_per_minute": rate_per_minute, "budget_calls": budget_calls,
                });
                client
                    .call(Method::POST, "/api/v1/grants", &[], Some(&body))
                    .await
            }
            Self::Revoke { grant } => {
                client
                    .call(
                        Method::DELETE,
                        &format!("/api/v1/grants/{grant}"),
                        &[],
                        None,
                    )
                    .await
            }
            Self::Credential { id, file } => {
                let value = read_json(&file)?;
                client
                    .call(
                        Method::PUT,
                        &format!("/api/v1/connectors/{id}/credential"),
                        &[],
                        Some(&value),
                    )
                    .await
            }
            Self::Audit { ticket, limit } => {
                client
                    .call(Method::GET, "/api/v1/audit", &trail(ticket, limit), None)
                    .await
            }
            Self::Effects { ticket, limit } => {
                client
                    .call(Method::GET, "/api/v1/effects", &trail(ticket, limit), None)
                    .await
            }
        };
        r.map_err(api_error)
    }
}

pub async fn run(args: Args) -> Result<()> {
    let reply = args.action.call(&args.api.client()?).await?;
    if !reply.is_null() {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    }
    Ok(())
}
