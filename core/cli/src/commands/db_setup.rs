//! `oshal db-setup`: prepares a PostgreSQL database for fleet mode, as an
//! administrator (the roles, the schema, the migrations).

use anyhow::Result;

use oshal_core::store::postgres as pg;

#[derive(clap::Args)]
pub struct Args {
    /// An administrator's URL (a role that may create roles and schemas).
    #[arg(long, env = "OSHAL_POSTGRES_ADMIN")]
    admin: String,
    #[arg(long, default_value = "oshal")]
    schema: String,
}

pub async fn run(args: Args) -> Result<()> {
    pg::setup(&args.admin, &args.schema).await?;
    println!(
        "schema {} ready; the controller connects as {} (set its password with ALTER ROLE)",
        args.schema,
        pg::APP_ROLE
    );
    Ok(())
}
