//! The two ways to run the platform, each opened by one constructor that
//! every shell calls: [`Platform::local`] (SQLite, an in-process bot pool;
//! `oshal serve`, the desktop app and `oshal bench`) and
//! [`Platform::fleet`] (PostgreSQL and Redis, bots in `oshal node`
//! processes; `oshal serve --postgres --redis` and `oshal bench --fleet`).
//!
//! A constructor opens the stores, the connectors (if asked for), the
//! controller and the Security Center (if asked for), in that order, and
//! [`Platform::shutdown`] stops them in reverse. It reads no flag, file or
//! environment variable: a shell turns what it was given into the options
//! here, so the shells differ only in what they ask for. Start with
//! [`LocalOptions::embedded`], the desktop's defaults.

use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::{SharedClock, SystemClock};
use crate::connector::broker::SecretBackend;
use crate::connector::broker::keyring::KeyringBackend;
use crate::connector::signing::TrustedKeys;
use crate::connector::store::ConnectorDb;
use crate::connector::{ConnectorError, Connectors};
use crate::controller::fleet::FleetConfig;
use crate::controller::{Controller, ControllerConfig, ControllerError, LocalPool};
use crate::model::Model;
use crate::model::builtin::BuiltinModel;
use crate::ops::Operations;
use crate::security::{SecurityCenter, SecurityConfig, SecurityError};
use crate::store::postgres::{self as pg, PgStore};
use crate::store::sqlite::SqliteStore;
use crate::store::{ApplyHook, Hooked, Store, StoreError};
use crate::ticket::{Skill, Work};
use crate::trading::Trading;
use crate::workflow::Workflows;

/// Bots in the embedded pool of the desktop app.
pub const EMBEDDED_BOTS: usize = 4;

/// Why a mode could not be opened: which part, and what it said.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModeError {
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    #[error("the connectors: {0}")]
    Connectors(#[from] ConnectorError),
    #[error("the controller: {0}")]
    Controller(#[from] ControllerError),
    #[error("the Security Center: {0}")]
    Security(#[from] SecurityError),
    #[error("the trading desk: {0}")]
    Trading(#[from] crate::trading::TradingError),
    #[error("the workflows: {0}")]
    Workflows(#[from] crate::workflow::WorkflowError),
    #[error("the operations loop: {0}")]
    Ops(#[from] crate::ops::OpsError),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// How the connectors open: where the broker keeps credentials, which
/// publishers are trusted, and a folder of further signed manifests.
#[derive(Debug, Clone)]
pub struct ConnectorOptions {
    pub backend: Arc<dyn SecretBackend>,
    pub trusted: TrustedKeys,
    /// Signed manifests to load besides the shipped ones; each one refused
    /// is logged with why, and the rest load.
    pub manifests_dir: Option<PathBuf>,
}

impl Default for ConnectorOptions {
    /// The OS keyring and the shipped publishers.
    fn default() -> Self {
        Self {
            backend: Arc::new(KeyringBackend::default()),
            trusted: TrustedKeys::shipped(),
            manifests_dir: None,
        }
    }
}

impl ConnectorOptions {
    async fn open(
        self,
        db: ConnectorDb,
        config: &ControllerConfig,
        clock: SharedClock,
    ) -> Result<Connectors, ConnectorError> {
        let rules = config.secret_rules.clone();
        let connectors = Connectors::open(db, self.backend, self.trusted, rules, clock).await?;
        if let Some(dir) = &self.manifests_dir {
            for (name, e) in connectors.load_dir(dir) {
                tracing::warn!(connector = %name, error = %e, "connector refused");
            }
        }
        Ok(connectors)
    }
}

/// Local mode: everything in one process.
#[derive(Debug)]
pub struct LocalOptions {
    /// Where the SQLite store lives (created if absent).
    pub data_dir: PathBuf,
    pub bots: usize,
    pub skills: Vec<Skill>,
    pub model: Arc<dyn Model>,
    /// Prices, secret rules, limits.
    pub controller: ControllerConfig,
    /// `None`: bots make no tool calls (the bench).
    pub connectors: Option<ConnectorOptions>,
    /// `None`: no Security Center (the bench). Its findings live in the
    /// same SQLite store; `postgres` is ignored.
    pub security: Option<SecurityConfig>,
}

impl LocalOptions {
    /// The desktop's embedded controller: 4 bots on the built-in model, the
    /// shipped prices and secret rules, credentials in the OS keyring, and a
    /// Security Center that reads the data directory.
    pub fn embedded(data_dir: PathBuf) -> Self {
        Self {
            bots: EMBEDDED_BOTS,
            skills: Work::default_skills(),
            model: Arc::new(BuiltinModel::new()),
            controller: ControllerConfig::default(),
            connectors: Some(ConnectorOptions::default()),
            security: Some(SecurityConfig {
                scan_paths: vec![data_dir.clone()],
                ..SecurityConfig::default()
            }),
            data_dir,
        }
    }
}

/// Fleet mode: this process is the controller; bots run in nodes.
#[derive(Debug)]
pub struct FleetOptions {
    /// PostgreSQL as the application role (`oshal_app`).
    pub postgres: String,
    pub schema: String,
    /// If given, the schema is set up (or migrated) first as this
    /// administrator.
    pub postgres_admin: Option<String>,
    pub redis: String,
    /// Every Redis key of this fleet starts with it.
    pub prefix: String,
    /// Prices, secret rules, limits; tenants are created on first use.
    pub controller: ControllerConfig,
    /// `None`: the nodes' bots make no tool calls (the bench).
    pub connectors: Option<ConnectorOptions>,
    /// `None`: no Security Center (the bench). Its findings live in SQLite
    /// in `data_dir`; its PostgreSQL target is this fleet's store.
    pub security: Option<SecurityConfig>,
    /// Where the controller keeps its own state (the Security Center's).
    pub data_dir: PathBuf,
    /// Wraps every write the controller makes (the fleet bench times them).
    pub store_hook: Option<Arc<dyn ApplyHook>>,
}

/// A running platform: its controller, its Security Center, the store the
/// controller reads, and what closes when it stops.
#[derive(Debug)]
pub struct Platform {
    pub controller: Controller,
    pub security: Option<SecurityCenter>,
    /// The trading desk's paper sessions.
    pub trading: Trading,
    /// Workflow runs.
    pub workflows: Workflows,
    /// The operations loop: alerts and incidents.
    pub ops: Operations,
    /// The durable store, for reads (what the controller writes through).
    pub store: Arc<dyn Store>,
    /// One line for a banner: the mode, its store and its bots.
    pub describe: String,
    closers: Vec<Closer>,
}

#[derive(Debug)]
enum Closer {
    Sqlite(Arc<SqliteStore>),
    Postgres(PgStore),
}

impl Platform {
    /// Opens local mode.
    pub async fn local(options: LocalOptions) -> Result<Platform, ModeError> {
        let LocalOptions {
            data_dir,
            bots,
            skills,
            model,
            controller: config,
            connectors,
            security,
        } = options;
        let clock: SharedClock = Arc::new(SystemClock);
        std::fs::create_dir_all(&data_dir).map_err(|e| ModeError::Invalid {
            field: "data_dir",
            reason: format!("cannot create {}: {e}", data_dir.display()),
        })?;
        let store = Arc::new(SqliteStore::open(&data_dir).await?);
        let tools = match connectors {
            None => None,
            Some(c) => {
                let db = crate::connector::store::sqlite(store.pool().clone());
                Some(c.open(db, &config, clock.clone()).await?)
            }
        };
        let describe = format!(
            "local mode, {bots} bots on model {}, data in {}",
            model.id(),
            data_dir.display()
        );
        let pool = LocalPool {
            bots,
            skills,
            model,
            tools,
            artifacts: Some(crate::bot::artifacts::ArtifactStore::new(artifact_root(
                &data_dir,
            ))),
        };
        let controller = Controller::start(config, store.clone(), pool, clock.clone()).await?;
        let security = match security {
            None => None,
            Some(config) => {
                let config = SecurityConfig {
                    postgres: None,
                    ..config
                };
                let pool = store.pool().clone();
                Some(SecurityCenter::open(pool, controller.clone(), config, clock).await?)
            }
        };
        let trading = Trading::start(controller.clone()).await?;
        let workflows = Workflows::start(controller.clone()).await?;
        let ops = Operations::start(controller.clone()).await?;
        if let Some(center) = &security {
            ops.attach_security(center.clone());
        }
        Ok(Platform {
            controller,
            security,
            trading,
            workflows,
            ops,
            store: store.clone(),
            describe,
            closers: vec![Closer::Sqlite(store)],
        })
    }

    /// Opens fleet mode: the store (set up first if an administrator URL is
    /// given), the connectors, the controller on Redis, and the Security
    /// Center over SQLite in the data directory.
    pub async fn fleet(options: FleetOptions) -> Result<Platform, ModeError> {
        let FleetOptions {
            postgres,
            schema,
            postgres_admin,
            redis,
            prefix,
            controller: config,
            connectors,
            security,
            data_dir,
            store_hook,
        } = options;
        let clock: SharedClock = Arc::new(SystemClock);
        if let Some(admin) = &postgres_admin {
            pg::setup(admin, &schema).await?;
        }
        let store = PgStore::connect(&postgres, &schema).await?;
        let tools = match connectors {
            None => None,
            Some(c) => {
                let db = crate::connector::store::postgres(store.pool().clone());
                Some(c.open(db, &config, clock.clone()).await?)
            }
        };
        let writes: Arc<dyn Store> = match store_hook {
            None => Arc::new(store.clone()),
            Some(hook) => Arc::new(Hooked {
                inner: Arc::new(store.clone()),
                hook,
            }),
        };
        let fleet = FleetConfig {
            redis_url: redis,
            prefix: prefix.clone(),
        };
        let config = ControllerConfig {
            auto_create_tenants: true,
            ..config
        };
        let controller =
            Controller::start_fleet(config, writes.clone(), fleet, clock.clone(), tools).await?;
        let describe =
            format!("fleet mode, store postgres schema {schema}, lanes redis prefix {prefix}");
        let mut closers = vec![Closer::Postgres(store.clone())];
        let security = match security {
            None => None,
            Some(config) => {
                // The controller's own state (security findings) lives in
                // SQLite in the data directory; the fleet's in PostgreSQL.
                std::fs::create_dir_all(&data_dir).map_err(|e| ModeError::Invalid {
                    field: "data_dir",
                    reason: format!("cannot create {}: {e}", data_dir.display()),
                })?;
                let local = Arc::new(SqliteStore::open(&data_dir).await?);
                let app_role = url::Url::parse(&postgres)
                    .ok()
                    .map(|u| u.username().to_owned())
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| pg::APP_ROLE.to_owned());
                let config = SecurityConfig {
                    postgres: Some(crate::security::postgres::PgTarget {
                        pool: store.pool().clone(),
                        schema,
                        app_role,
                        tenant_tables: pg::TENANT_TABLES.iter().map(|t| (*t).to_owned()).collect(),
                    }),
                    ..config
                };
                let pool = local.pool().clone();
                closers.push(Closer::Sqlite(local));
                Some(SecurityCenter::open(pool, controller.clone(), config, clock).await?)
            }
        };
        let trading = Trading::start(controller.clone()).await?;
        let workflows = Workflows::start(controller.clone()).await?;
        let ops = Operations::start(controller.clone()).await?;
        if let Some(center) = &security {
            ops.attach_security(center.clone());
        }
        Ok(Platform {
            controller,
            security,
            trading,
            workflows,
            ops,
            store: writes,
            describe,
            closers,
        })
    }

    /// Stops the controller, then closes the stores. Safe to call again.
    pub async fn shutdown(&self) {
        self.trading.shutdown();
        self.workflows.shutdown();
        self.ops.shutdown();
        self.controller.shutdown().await;
        for c in &self.closers {
            match c {
                Closer::Sqlite(s) => s.close().await,
                Closer::Postgres(s) => s.close().await,
            }
        }
    }
}

/// `<data dir>/artifacts`, where media and build steps keep their files;
/// a data dir of an earlier version keeps them in `media/`, moved here
/// once (what its runs' memo names is still found).
fn artifact_root(data_dir: &std::path::Path) -> PathBuf {
    let root = data_dir.join("artifacts");
    let old = data_dir.join("media");
    if !root.exists()
        && old.is_dir()
        && let Err(e) = std::fs::rename(&old, &root)
    {
        tracing::warn!(from = %old.display(), to = %root.display(), error = %e, "the artifact root could not be moved; media/ is used");
        return old;
    }
    root
}
