//! `oshal tickets`: a page of tickets, newest first, as a table.

use anyhow::{Context, Result};
use oshal_core::name::Named;
use std::io::Write as _;

use oshal_core::api::TicketFilter;
use oshal_core::ticket::{TicketId, TicketState};

use crate::args::{ApiArgs, api_error};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    state: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: u32,
    #[arg(long)]
    cursor: Option<String>,
    #[command(flatten)]
    api: ApiArgs,
}

pub async fn run(args: Args) -> Result<()> {
    // Checked here too, so a typo is named as the flag it came from.
    if let Some(s) = &args.state {
        TicketState::parse(s).with_context(|| format!("--state {s:?} is not a ticket state"))?;
    }
    if let Some(c) = &args.cursor {
        TicketId::parse(c).context("--cursor")?;
    }
    let filter = TicketFilter {
        state: args.state,
        limit: Some(args.limit.to_string()),
        cursor: args.cursor,
        ..TicketFilter::default()
    };
    let page = args.api.client()?.list(&filter).await.map_err(api_error)?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:<36}  {:<17}  {:>3}  {:<8}  {:<12}  KIND",
        "ID", "STATE", "TRY", "BOT", "TENANT"
    )?;
    for t in &page.tickets {
        let bot = t.bot.as_ref().map_or("-", |b| b.as_str());
        writeln!(
            out,
            "{:<36}  {:<17}  {:>3}  {:<8}  {:<12}  {}",
            t.id, t.state, t.attempts, bot, t.tenant, t.kind
        )?;
    }
    if let Some(next) = page.next_cursor {
        writeln!(out, "(more: --cursor {next})")?;
    }
    Ok(())
}
