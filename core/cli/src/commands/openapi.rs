//! `oshal openapi`: print the API's OpenAPI 3.1 contract, generated from the
//! same route table and types the server runs (no server needed).

use anyhow::Result;
use std::io::Write as _;

#[derive(clap::Args)]
pub struct Args {}

pub async fn run(_: Args) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(oshal_core::api::contract::openapi_json().as_bytes())?;
    Ok(())
}
