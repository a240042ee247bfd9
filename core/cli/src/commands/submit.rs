//! `oshal submit`: one ticket, and with `--wait` its end.

use anyhow::{Context, Result, bail};
use std::time::Duration;

use oshal_core::ticket::{NewTicket, TicketState};

use crate::args::{ApiArgs, api_error};

#[derive(clap::Args)]
pub struct Args {
    /// The prompt of a chat ticket.
    prompt: Option<String>,
    #[arg(long, default_value = "chat")]
    kind: String,
    /// The payload as JSON (instead of a prompt).
    #[arg(long)]
    payload: Option<String>,
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long)]
    idempotency_key: Option<String>,
    #[arg(long)]
    priority: Option<u8>,
    /// Wait until the ticket finishes and print it.
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    api: ApiArgs,
}

pub async fn run(args: Args) -> Result<()> {
    let payload = match (args.payload, args.prompt) {
        (Some(p), _) => serde_json::from_str(&p).context("--payload is not JSON")?,
        (None, Some(prompt)) => serde_json::json!({ "prompt": prompt }),
        (None, None) => bail!("give a prompt, or --payload JSON"),
    };
    let client = args.api.client()?;
    let ticket = NewTicket {
        kind: args.kind,
        payload,
        tenant: args.tenant,
        idempotency_key: args.idempotency_key,
        priority: args.priority,
        ..NewTicket::default()
    };
    let submitted = client.submit(&ticket).await.map_err(api_error)?;
    if !args.wait {
        println!("{}", serde_json::to_string_pretty(&submitted)?);
        return Ok(());
    }
    let id = submitted.id.to_string();
    loop {
        let view = client.ticket(&id).await.map_err(api_error)?;
        if view.state.is_terminal() {
            println!("{}", serde_json::to_string_pretty(&view)?);
            if view.state != TicketState::Succeeded {
                bail!("ticket {id} ended {}", view.state);
            }
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
