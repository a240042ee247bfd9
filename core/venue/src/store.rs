//! What the venue keeps, in SQLite (`venue.db` in its data directory):
//! the SHA-256 of each API key it accepts and every order it took with
//! what it answered, so a restarted venue answers a retried order as it
//! did the first time and a reconciliation reads the same reports.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use oshal_trading::venue::wire::{WireOrder, WireReport};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

/// The database file inside the venue's data directory.
pub const DB_FILE: &str = "venue.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the venue's database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the venue's database could not be migrated: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("the venue's data directory {path}: {reason}")]
    Dir { path: String, reason: String },
    #[error("a stored {what} does not parse: {reason}")]
    Corrupt { what: &'static str, reason: String },
}

/// An order the venue took and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub account: String,
    pub order: WireOrder,
    pub report: WireReport,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VenueStore {
    pool: SqlitePool,
}

/// The hex SHA-256 of an API key: all the venue keeps of it.
pub fn key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

type Row = (String, String, String, Option<String>);

fn stored((account, order, report, idempotency_key): Row) -> Result<Stored, StoreError> {
    let corrupt = |what| {
        move |e: serde_json::Error| StoreError::Corrupt {
            what,
            reason: e.to_string(),
        }
    };
    Ok(Stored {
        account,
        order: serde_json::from_str(&order).map_err(corrupt("order"))?,
        report: serde_json::from_str(&report).map_err(corrupt("report"))?,
        idempotency_key,
    })
}

impl VenueStore {
    /// Opens (creating if needed) `dir/venue.db` and migrates it.
    pub async fn open(dir: &Path) -> Result<VenueStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Dir {
            path: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(dir.join(DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(VenueStore { pool })
    }

    /// Accepts API key `key` from now on (only its hash is stored).
    pub async fn add_key(&self, key: &str, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT OR IGNORE INTO api_keys (hash, created_at_ms) VALUES (?, ?)")
            .bind(key_hash(key))
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether `key` is one the venue accepts.
    pub async fn accepts(&self, key: &str) -> Result<bool, StoreError> {
        let hash = key_hash(key);
        let found: Option<(String,)> = sqlx::query_as("SELECT hash FROM api_keys WHERE hash = ?")
            .bind(&hash)
            .fetch_optional(&self.pool)
            .await?;
        // The lookup is by the key's hash: nothing secret is compared.
        Ok(found.is_some())
    }

    /// The order `client_order_id` of `account`, if the venue took it.
    pub async fn find(
        &self,
        account: &str,
        client_order_id: &str,
    ) -> Result<Option<Stored>, StoreError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT account, order_json, report_json, idempotency_key FROM orders
             WHERE account = ? AND client_order_id = ?",
        )
        .bind(account)
        .bind(client_order_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(stored).transpose()
    }

    /// The order submitted with idempotency key `key`, if any.
    pub async fn find_by_key(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT account, order_json, report_json, idempotency_key FROM orders
             WHERE idempotency_key = ?",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(stored).transpose()
    }

    /// Every order of `account`, in the order the venue took them.
    pub async fn list(&self, account: &str) -> Result<Vec<Stored>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT account, order_json, report_json, idempotency_key FROM orders
             WHERE account = ? ORDER BY seq",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(stored).collect()
    }

    /// How many orders `account` has: the next one is number `n + 1`.
    pub async fn count(&self, account: &str) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM orders WHERE account = ?")
            .bind(account)
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Records an order and its report, as number `seq` of its account.
    pub async fn insert(&self, s: &Stored, seq: u64, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO orders (account, client_order_id, seq, idempotency_key, order_json,
                                 report_json, created_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.account)
        .bind(&s.order.client_order_id)
        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
        .bind(&s.idempotency_key)
        .bind(json(&s.order))
        .bind(json(&s.report))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A wire message as the JSON the table keeps.
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("a wire message serializes")
}
