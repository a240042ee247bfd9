//! `oshal security`: scan now, list findings and controls, export and
//! import SARIF, suppress a finding with a reason, all through the API.

use anyhow::{Context, Result};
use clap::Subcommand;
use oshal_core::api::FindingsQuery;
use oshal_core::api::client::Client;
use oshal_core::security::SuppressRequest;
use std::path::{Path, PathBuf};

use crate::args::{ActionArgs, api_error, json, print};

pub type Args = ActionArgs<Action>;

#[derive(Subcommand)]
pub enum Action {
    /// Run every check now; print the findings (and write SARIF to FILE).
    Scan {
        #[arg(long)]
        sarif: Option<PathBuf>,
    },
    /// Findings, worst first.
    Findings {
        /// open, suppressed or resolved.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        source: Option<String>,
    },
    /// Each preventive control and the checks that prove it.
    Controls,
    /// Write every unresolved finding as SARIF 2.1.0 (to FILE, or stdout).
    Export { file: Option<PathBuf> },
    /// Import a SARIF 2.1.0 log from another scanner (Trivy, Checkov, Semgrep…).
    Import { file: PathBuf },
    /// Suppress a finding, with a justification, for some days.
    Suppress {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

impl Action {
    /// Does the action; its reply as JSON (`null` for none).
    async fn call(self, client: &Client) -> Result<serde_json::Value> {
        let write = |file: &Path, value: &serde_json::Value| -> Result<()> {
            std::fs::write(file, serde_json::to_vec_pretty(value)?)
                .with_context(|| format!("writing {}", file.display()))
        };
        match self {
            Self::Scan { sarif } => {
                let report = json(client.security_scan().await)?;
                if let Some(file) = sarif {
                    let log = client.export_sarif().await.map_err(api_error)?;
                    write(&file, &log)?;
                    eprintln!("oshal: SARIF written to {}", file.display());
                }
                Ok(report)
            }
            Self::Findings { state, source } => {
                let query = FindingsQuery {
                    state,
                    source,
                    limit: None,
                };
                json(client.security_findings(&query).await)
            }
            Self::Controls => json(client.security_controls().await),
            Self::Export { file } => {
                let log = client.export_sarif().await.map_err(api_error)?;
                match file {
                    Some(f) => {
                        write(&f, &log)?;
                        Ok(serde_json::Value::Null)
                    }
                    None => Ok(log),
                }
            }
            Self::Import { file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("{}", file.display()))?;
                let log: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", file.display()))?;
                json(client.import_sarif(&log).await)
            }
            Self::Suppress { id, reason, days } => {
                let request = SuppressRequest { reason, days };
                json(client.security_suppress(id, &request).await)
            }
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    print(&args.action.call(&args.api.client()?).await?)
}
