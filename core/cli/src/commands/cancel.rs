//! `oshal cancel ID`: cancels a ticket (a running model call is aborted).

use anyhow::Result;

use crate::args::{TicketArgs, api_error};

pub type Args = TicketArgs;

pub async fn run(args: Args) -> Result<()> {
    let view = args
        .api
        .client()?
        .cancel(&args.id)
        .await
        .map_err(api_error)?;
    println!("ticket {} is {}", view.id, view.state);
    Ok(())
}
