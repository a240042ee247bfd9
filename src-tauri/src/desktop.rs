//! The one managed state: the controller this window drives.
//!
//! The embedded controller always runs (local-only mode: SQLite in the
//! app-data directory, a local pool of bots on the built-in offline model,
//! the shipped price table), so work submitted locally carries on while the
//! window looks at a fleet. The window drives one [`Target`] at a time: the
//! embedded controller, or a remote one reached through the HTTP API
//! ([`oshal_core::api::client::Client`]) with its token from the OS keyring.
//! Switching is one call, and every switch bumps a generation that ends the
//! previous target's event feed.

use oshal_core::api::client::Client;
use oshal_core::api::tokens::WhoAmI;
use oshal_core::api::{ApiError, ErrorKind};
use oshal_core::controller::Controller;
use oshal_core::mode::{LocalOptions, Platform};
use oshal_core::security::SecurityCenter;
use serde::Serialize;
use specta::Type;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::fleets::{Fleet, LOCAL};

/// How often the embedded Security Center scans on its own.
pub const SCAN_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// A remote controller the window is attached to.
#[derive(Debug)]
pub struct Remote {
    pub fleet: Fleet,
    pub client: Client,
    /// What its token is: the operator's, or a tenant's with a role.
    pub access: WhoAmI,
}

/// What the window's commands act on.
#[derive(Debug, Clone)]
pub enum Target {
    Local(Controller),
    Fleet(Arc<Remote>),
}

/// Which controller this window drives; the header always shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Type)]
pub struct Connection {
    /// `local` or the fleet's name.
    pub label: String,
    pub embedded: bool,
    /// The fleet's controller URL (none for the embedded one).
    pub url: Option<String>,
    /// What the fleet's token holds (none for the embedded one): every
    /// tenant, or one tenant with the operator's or a viewer's role.
    pub access: Option<WhoAmI>,
}

pub struct Desktop {
    data_dir: PathBuf,
    security: SecurityCenter,
    stop_scans: tokio_util::sync::CancellationToken,
    /// The embedded controller and its store.
    platform: Platform,
    target: RwLock<Target>,
    generation: Arc<AtomicU64>,
}

impl Desktop {
    pub async fn start_local(data_dir: &Path) -> anyhow::Result<Self> {
        // The embedded platform, as `oshal serve` opens local mode: the
        // Security Center reads the app's own files (the store is binary
        // and skipped; settings, logs and anything dropped there are read)
        // and the store's tickets, on a schedule and on demand.
        let platform = Platform::local(LocalOptions::embedded(data_dir.to_owned())).await?;
        let security = platform
            .security
            .clone()
            .ok_or_else(|| anyhow::anyhow!("the embedded platform has no Security Center"))?;
        let stop_scans = tokio_util::sync::CancellationToken::new();
        security.spawn_schedule(SCAN_EVERY, stop_scans.clone());
        Ok(Self {
            data_dir: data_dir.to_owned(),
            target: RwLock::new(Target::Local(platform.controller.clone())),
            security,
            stop_scans,
            platform,
            generation: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The embedded controller, whatever the window drives.
    pub fn local(&self) -> &oshal_core::controller::Controller {
        &self.platform.controller
    }

    /// The embedded controller's Security Center.
    pub fn security(&self) -> &SecurityCenter {
        &self.security
    }

    /// The embedded controller's workflow runs.
    pub fn workflows(&self) -> &oshal_core::workflow::Workflows {
        &self.platform.workflows
    }

    /// The embedded controller's operations loop.
    pub fn ops(&self) -> &oshal_core::ops::Operations {
        &self.platform.ops
    }

    /// The embedded controller's trading desk.
    pub fn trading(&self) -> &oshal_core::trading::Trading {
        &self.platform.trading
    }

    /// Where this app keeps its files (the store, the settings).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What commands act on right now.
    pub fn target(&self) -> Target {
        self.target
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn connection(&self) -> Connection {
        match self.target() {
            Target::Local(_) => Connection {
                label: LOCAL.into(),
                embedded: true,
                url: None,
                access: None,
            },
            Target::Fleet(r) => Connection {
                label: r.fleet.name.clone(),
                embedded: false,
                url: Some(r.fleet.url.clone()),
                access: Some(r.access.clone()),
            },
        }
    }

    /// Bumped on every switch; an event feed stops once it moves on.
    pub fn generation(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }

    /// Attaches to `fleet` once it has answered with this token: its health
    /// says it is an Oshal controller, and `whoami` proves the token and
    /// says what it holds (an operator's, or a tenant's and its role).
    pub async fn attach(&self, fleet: Fleet, token: &str) -> Result<Connection, ApiError> {
        let trust = match &fleet.pin_sha256 {
            Some(pin) => oshal_core::tls::Trust::pin(pin).map_err(|e| {
                ApiError::new(ErrorKind::Invalid, e.to_string()).field("pin_sha256")
            })?,
            None => oshal_core::tls::Trust::System,
        };
        let client = Client::with_trust(&fleet.url, token, &trust)?;
        let health = client.health().await?;
        if !health.ok {
            tracing::warn!(fleet = %fleet.name, "attaching to a degraded controller");
        }
        let access = client.whoami().await.map_err(|e| match ApiError::from(e) {
            e if e.kind == ErrorKind::Unauthorized => ApiError::new(
                ErrorKind::Unauthorized,
                format!("the controller at {} refused the token", fleet.url),
            )
            .field("token"),
            e => e,
        })?;
        self.switch(Target::Fleet(Arc::new(Remote {
            fleet,
            client,
            access,
        })));
        Ok(self.connection())
    }

    /// Back to the embedded controller.
    pub fn detach(&self) -> Connection {
        self.switch(Target::Local(self.platform.controller.clone()));
        self.connection()
    }

    fn switch(&self, to: Target) {
        *self.target.write().unwrap_or_else(|p| p.into_inner()) = to;
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub async fn shutdown(&self) {
        self.stop_scans.cancel();
        self.platform.shutdown().await;
    }
}
