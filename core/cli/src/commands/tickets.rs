//! `oshal tickets`: a page of tickets, newest first, as a table.

use anyhow::{Context, Result};
use std::io::Write as _;

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
    let state = args
        .state
        .map(|s| {
            TicketState::parse(&s).with_context(|| format!("--state {s:?} is not a ticket state"))
        })
        .transpose()?;
    let cursor = args
        .cursor
        .map(|c| TicketId::parse(&c))
        .transpose()
        .context("--cursor")?;
    let page = args
        .api
        .client()?
        .tickets(state, args.limit, cursor)
        .await
        .map_err(api_error)?;
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
