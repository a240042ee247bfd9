//! `oshal security`: scan now, list findings and controls, export and
//! import SARIF, suppress a finding with a reason, all through the API.

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
    async fn call(self, client: &Client) -> Result<serde_json::Value> {
        use reqwest::Method;
        let write = |file: &Path, value: &serde_json::Value| -> Result<()> {
            std::fs::write(file, serde_json::to_vec_pretty(value)?)
                .with_context(|| format!("writing {}", file.display()))
        };
        Ok(match self {
            Self::Scan { sarif } => {
                let report = client
                    .call(Method::POST, "/api/v1/security/scans", &[], None)
                    .await
                    .map_err(api_error)?;
                if let Some(file) = sarif {
                    let log = client
                        .call(Method::GET, "/api/v1/security/sarif", &[], None)
                        .await
                        .map_err(api_error)?;
                    write(&file, &log)?;
                    eprintln!("oshal: SARIF written to {}", file.display());
                }
                report
            }
            Self::Findings { state, source } => {
                let mut q = Vec::new();
                q.extend(state.map(|s| ("state", s)));
                q.extend(source.map(|s| ("source", s)));
                client
                    .call(Method::GET, "/api/v1/security/findings", &q, None)
                    .await
                    .map_err(api_error)?
            }
            Self::Controls => client
                .call(Method::GET, "/api/v1/security/controls", &[], None)
                .await
                .map_err(api_error)?,
            Self::Export { file } => {
                let log = client
                    .call(Method::GET, "/api/v1/security/sarif", &[], None)
                    .await
                    .map_err(api_error)?;
                match file {
                    Some(f) => {
                        write(&f, &log)?;
                        serde_json::Value::Null
                    }
                    None => log,
                }
            }
            Self::Import { file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("{}", file.display()))?;
                let log: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", file.display()))?;
                client
                    .call(Method::POST, "/api/v1/security/sarif", &[], Some(&log))
                    .await
                    .map_err(api_error)?
            }
            Self::Suppress { id, reason, days } => {
                let body = serde_json::json!({ "reason": reason, "days": days });
                client
                    .call(
                        Method::POST,
                        &format!("/api/v1/security/findings/{id}/suppress"),
                        &[],
                        Some(&body),
                    )
                    .await
                    .map_err(api_error)?
            }
        })
    }
}

pub async fn run(args: Args) -> Result<()> {
    let reply = args.action.call(&args.api.client()?).await?;
    if !reply.is_null() {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    }
    Ok(())
}
