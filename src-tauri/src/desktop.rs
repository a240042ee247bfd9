//! The one managed state: the controller this window drives.
//!
//! Local-only mode embeds the controller: SQLite in the app-data directory,
//! a local pool of bots on the built-in offline model, the shipped price
//! table. (Attaching to a remote fleet goes through the same facade.)

use oshal_core::clock::SystemClock;
use oshal_core::controller::{Controller, ControllerConfig, LocalPool};
use oshal_core::cost::PriceTable;
use oshal_core::store::sqlite::SqliteStore;
use std::path::Path;
use std::sync::Arc;

/// Bots in the embedded pool.
pub const LOCAL_BOTS: usize = 4;

pub struct Desktop {
    pub controller: Controller,
    store: Arc<SqliteStore>,
    /// What the window's header shows.
    pub label: String,
}

impl Desktop {
    pub async fn start_local(data_dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let store = Arc::new(SqliteStore::open(data_dir).await?);
        let pool = LocalPool::builtin(LOCAL_BOTS);
        let config = ControllerConfig {
            prices: PriceTable::builtin(),
            ..ControllerConfig::default()
        };
        let controller =
            Controller::start(config, store.clone(), pool, Arc::new(SystemClock)).await?;
        Ok(Self {
            controller,
            store,
            label: "local".into(),
        })
    }

    pub async fn shutdown(&self) {
        self.controller.shutdown().await;
        self.store.close().await;
    }
}
