//! The OS keyring as a secret backend (local mode): macOS Keychain, Windows
//! Credential Manager, or the Secret Service on Linux (gnome-keyring,
//! KWallet). Service [`SERVICE`], user = the secret's path.

use async_trait::async_trait;

use super::{BrokerError, Secret, SecretBackend};

pub const SERVICE: &str = "dev.oshal.broker";

#[derive(Debug, Clone)]
pub struct KeyringBackend {
    service: String,
}

impl Default for KeyringBackend {
    fn default() -> Self {
        Self::new(SERVICE)
    }
}

impl KeyringBackend {
    /// A backend under its own service name (tests use a unique one).
    pub fn new(service: impl Into<String>) -> Self {
        Self {
            service: service.into(),
        }
    }

    fn entry(&self, path: &str) -> Result<keyring::Entry, BrokerError> {
        keyring::Entry::new(&self.service, path).map_err(err)
    }

    /// Deletes a secret (tests clean up with it).
    pub async fn delete(&self, path: &str) -> Result<(), BrokerError> {
        let entry = self.entry(path)?;
        tokio::task::spawn_blocking(move || match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(err(e)),
        })
        .await
        .map_err(|e| err(e.to_string()))?
    }
}

fn err(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Backend {
        backend: "keyring",
        reason: e.to_string(),
    }
}

#[async_trait]
impl SecretBackend for KeyringBackend {
    fn name(&self) -> &'static str {
        "keyring"
    }

    async fn read(&self, path: &str) -> Result<Option<Secret>, BrokerError> {
        let entry = self.entry(path)?;
        tokio::task::spawn_blocking(move || match entry.get_password() {
            Ok(s) => Ok(Some(Secret::new(s))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(err(e)),
        })
        .await
        .map_err(|e| err(e.to_string()))?
    }

    async fn write(&self, path: &str, value: &Secret) -> Result<(), BrokerError> {
        let entry = self.entry(path)?;
        let value = value.clone();
        tokio::task::spawn_blocking(move || entry.set_password(value.expose()).map_err(err))
            .await
            .map_err(|e| err(e.to_string()))?
    }
}
