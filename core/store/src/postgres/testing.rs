//! A scratch schema on the real PostgreSQL server (`OSHAL_TEST_POSTGRES`,
//! default the local trust-auth server) for tests here and in other crates
//! (feature `test-support`): set up like a fleet's, dropped afterwards.

#![allow(clippy::unwrap_used)] // test support: a failure is the test's

use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{APP_ROLE, PgStore, as_role, drop_schema, options, setup};

pub fn admin_url() -> String {
    std::env::var("OSHAL_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Asserts that `err` is PostgreSQL's insufficient_privilege (42501): what
/// row-level security and the app role's grants answer.
#[track_caller]
pub fn assert_refused(err: &sqlx::Error, what: &str) {
    let code = err.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("42501"), "{what}: {err}");
}

/// A fresh schema, set up, with a store connected as `oshal_app`.
pub struct TestDb {
    pub schema: String,
    pub store: PgStore,
}

impl TestDb {
    pub async fn new() -> Self {
        let schema = format!("t_{}", Uuid::now_v7().simple());
        setup(&admin_url(), &schema).await.unwrap();
        let app = as_role(&admin_url(), APP_ROLE).unwrap();
        let store = PgStore::connect(&app, &schema).await.unwrap();
        Self { schema, store }
    }

    pub async fn drop(self) {
        self.store.close().await;
        drop_schema(&admin_url(), &self.schema).await.unwrap();
    }

    /// A single connection as `role`, in this schema.
    pub async fn conn(&self, role: &str) -> PgConnection {
        let opts = options(&as_role(&admin_url(), role).unwrap())
            .unwrap()
            .options([("search_path", self.schema.as_str())]);
        PgConnection::connect_with(&opts).await.unwrap()
    }
}
