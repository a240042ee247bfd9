//! Preparing a PostgreSQL database for a fleet, as an administrator: the
//! three roles, the schema, the migrations ([`setup`]), and the check a
//! controller makes when it connects that the schema is prepared and not
//! behind its binary ([`check_prepared`]). Must never run as the
//! application role: it creates roles and owns the schema.

use sqlx::migrate::Migrator;
use sqlx::{Connection, PgConnection, PgPool};

use super::options;
use crate::StoreError;

/// The migrations, embedded once: run by `setup`, compared by the check.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub const OWNER_ROLE: &str = "oshal_owner";
pub const APP_ROLE: &str = "oshal_app";
/// The tables the migrations give a `tenant_id`, each under row-level
/// security: what the Security Center expects to find (a test holds this
/// list to the migrations).
pub const TENANT_TABLES: &[&str] = &[
    "connector_audit",
    "desk_journal",
    "effects",
    "ledger",
    "ticket_events",
    "tickets",
];
pub const READONLY_ROLE: &str = "oshal_readonly";
/// The schema used when none is named.
pub const DEFAULT_SCHEMA: &str = "oshal";

/// Checks a schema name: it is spliced into DDL, so only `[a-z_][a-z0-9_]*`
/// up to 63 bytes (PostgreSQL's identifier limit) is accepted.
pub fn check_schema(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "schema {schema:?} must be 1..=63 characters of a-z, 0-9 or '_', not starting with a digit"
        )))
    }
}

/// Prepares a database for Oshal, as an administrator (a role that may
/// create roles and schemas): creates the three roles if absent, creates
/// `schema` owned by `oshal_owner`, and runs the migrations as that owner.
/// Safe to run again and from several processes at once.
pub async fn setup(admin_url: &str, schema: &str) -> Result<(), StoreError> {
    check_schema(schema)?;
    let mut admin = PgConnection::connect_with(&options(admin_url)?).await?;
    for (role, attrs) in [
        (OWNER_ROLE, "NOLOGIN"),
        (
            APP_ROLE,
            "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT",
        ),
        (
            READONLY_ROLE,
            "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT",
        ),
    ] {
        // Concurrent creators race on the catalog: either error means "exists".
        let sql = format!(
            "DO $$ BEGIN CREATE ROLE {role} {attrs}; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await?;
    }
    let ddl = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {OWNER_ROLE}; \
         GRANT USAGE ON SCHEMA {schema} TO {APP_ROLE}, {READONLY_ROLE};"
    );
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
        .execute(&mut admin)
        .await
    {
        // Two processes creating the same schema at once: one of them wins.
        if !e.to_string().contains("duplicate key") {
            return Err(e.into());
        }
    }
    let set_role = format!("SET ROLE {OWNER_ROLE}; SET search_path TO {schema}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(set_role))
        .execute(&mut admin)
        .await?;
    MIGRATOR
        .run(&mut admin)
        .await
        .map_err(|e| StoreError::Migrate(e.to_string()))?;
    // So a controller can tell a schema older than its binary (and say so).
    let grant = format!("GRANT SELECT ON {schema}._sqlx_migrations TO {APP_ROLE}, {READONLY_ROLE}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(grant))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}

/// Refuses a schema [`setup`] never prepared, or prepared with fewer
/// migrations than this binary has, saying how to fix it (instead of the
/// first query failing on a missing table).
pub(super) async fn check_prepared(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    let fix = format!(
        "run `oshal db-setup --admin <administrator URL> --schema {schema}`, or start `oshal serve` with --postgres-admin <administrator URL>"
    );
    let (tickets, migrations): (Option<String>, Option<String>) = sqlx::query_as(
        "SELECT to_regclass('tickets')::text, to_regclass('_sqlx_migrations')::text",
    )
    .fetch_one(pool)
    .await?;
    if tickets.is_none() || migrations.is_none() {
        return Err(StoreError::Invalid(format!(
            "the PostgreSQL schema {schema} is not set up for Oshal: {fix}"
        )));
    }
    let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    // Readable by the roles `setup` grants it to; a role that cannot read
    // it is not refused on that account.
    let applied: Option<i64> =
        match sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
        {
            Ok(v) => v,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => return Ok(()),
            Err(e) => return Err(e.into()),
        };
    match applied {
        Some(v) if v >= latest => Ok(()),
        v => Err(StoreError::Invalid(format!(
            "the PostgreSQL schema {schema} is at migration {}, older than this binary's {latest}: {fix}",
            v.unwrap_or(0)
        ))),
    }
}

/// Drops `schema` and everything in it (tests and benches clean up with it).
pub async fn drop_schema(admin_url: &str, schema: &str) -> Result<(), StoreError> {
    check_schema(schema)?;
    let mut admin = PgConnection::connect_with(&options(admin_url)?).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await?;
    Ok(())
}

/// `url` with its user replaced by `role` (same host, database and password
/// rules): how tests and the bench connect as `oshal_app` on a trust-auth
/// server given an administrator's URL.
pub fn as_role(url: &str, role: &str) -> Result<String, StoreError> {
    let mut u =
        url::Url::parse(url).map_err(|e| StoreError::Invalid(format!("postgres URL: {e}")))?;
    u.set_username(role)
        .and_then(|()| u.set_password(None))
        .map_err(|()| StoreError::Invalid("postgres URL cannot carry a user".into()))?;
    Ok(u.to_string())
}

impl super::PgStore {
    /// The server's durability settings as this pool's sessions have them:
    /// `synchronous_commit=… fsync=…` (what a bench's figure stands on).
    pub async fn durability(&self) -> Result<String, StoreError> {
        let (sync, fsync): (String, String) = sqlx::query_as(
            "SELECT current_setting('synchronous_commit'), current_setting('fsync')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(format!("synchronous_commit={sync} fsync={fsync}"))
    }
}
