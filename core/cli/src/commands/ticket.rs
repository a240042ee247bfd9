//! `oshal ticket ID`: one ticket in full (state, attempts, result, cost,
//! events, why it waits).

use anyhow::Result;

use crate::args::{TicketArgs, api_error};

pub type Args = TicketArgs;

pub async fn run(args: Args) -> Result<()> {
    let view = args
        .api
        .client()?
        .ticket(&args.id)
        .await
        .map_err(api_error)?;
    println!("{}", serde_json::to_string_pretty(&view)?);
    Ok(())
}
