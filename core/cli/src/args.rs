//! The argument groups several commands share: the API to talk to, the
//! model and price table, the bots of a pool, a fleet's stores, the
//! connectors' credentials and trust, and the Security Center's settings.
//! What was typed becomes the platform's options here; nothing is opened.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use oshal_core::api::client::{Client, ClientError};
use oshal_core::connector::signing::TrustedKeys;
use oshal_core::controller::MAX_BOTS;
use oshal_core::cost::PriceTable;
use oshal_core::mode::ConnectorOptions;
use oshal_core::model::Model;
use oshal_core::model::builtin::BuiltinModel;
use oshal_core::model::openai::{OpenAiCompatible, OpenAiConfig};
use oshal_core::secrets::SecretRules;
use oshal_core::security::SecurityConfig;
use oshal_core::ticket::{ModelId, Skill};

/// Where `serve` writes its API token, in its data directory.
pub const TOKEN_FILE: &str = "api-token";

/// `serve`'s data directory when none is given.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("oshal"))
        .unwrap_or_else(|| PathBuf::from(".oshal"))
}

#[derive(clap::Args, Clone)]
pub struct ApiArgs {
    /// The API to talk to.
    #[arg(long, env = "OSHAL_API", default_value = "http://127.0.0.1:7411")]
    pub api: String,
    /// The API token (else read from DATA_DIR/api-token).
    #[arg(long, env = "OSHAL_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Where `oshal serve` keeps its data (for the token file).
    #[arg(long, env = "OSHAL_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Trust only the CA certificate(s) in this PEM file for an https API
    /// (the controller's name is checked against its certificate).
    #[arg(long, env = "OSHAL_CA_FILE", conflicts_with = "pin_sha256")]
    pub ca_file: Option<PathBuf>,
    /// Trust exactly the certificate with this SHA-256 (what `oshal
    /// serve` prints; 64 hex digits, `:` allowed), e.g. a self-signed one.
    #[arg(long, env = "OSHAL_PIN_SHA256")]
    pub pin_sha256: Option<String>,
}

/// Connectors: where the token broker keeps credentials, and which
/// publishers and manifests to trust besides the shipped ones. A fleet's
/// controller runs every tool call of its nodes' bots, so these belong to
/// `serve` in both modes.
#[derive(clap::Args, Clone)]
pub struct ConnectorArgs {
    /// Keep connector credentials in Vault (or OpenBao) at this address,
    /// KV v2, instead of the OS keyring.
    #[arg(long, env = "OSHAL_VAULT_ADDR")]
    pub vault_addr: Option<String>,
    /// A file holding the Vault token (never a flag: flags show in `ps`).
    #[arg(long, env = "OSHAL_VAULT_TOKEN_FILE", requires = "vault_addr")]
    pub vault_token_file: Option<PathBuf>,
    /// The KV v2 mount.
    #[arg(long, default_value = "secret")]
    pub vault_mount: String,
    /// The path under the mount where Oshal's secrets live.
    #[arg(long, default_value = "oshal")]
    pub vault_prefix: String,
    /// More trusted publisher keys (a publishers.json).
    #[arg(long)]
    pub trust_publishers: Option<PathBuf>,
    /// A directory of signed connector manifests to load besides the shipped ones.
    #[arg(long)]
    pub connectors_dir: Option<PathBuf>,
}

impl ConnectorArgs {
    /// What the connectors open with: the OS keyring or Vault, the shipped
    /// publishers and `--trust-publishers`, and `--connectors-dir`.
    pub fn options(&self) -> Result<ConnectorOptions> {
        use oshal_core::connector::broker::{
            Secret, SecretBackend, keyring::KeyringBackend, vault::VaultBackend,
        };
        let backend: Arc<dyn SecretBackend> = match &self.vault_addr {
            None => Arc::new(KeyringBackend::default()),
            Some(addr) => {
                let file = self
                    .vault_token_file
                    .as_ref()
                    .context("--vault-addr needs --vault-token-file")?;
                let token = std::fs::read_to_string(file)
                    .with_context(|| format!("--vault-token-file {}", file.display()))?;
                Arc::new(
                    VaultBackend::new(
                        addr,
                        Secret::new(token.trim()),
                        &self.vault_mount,
                        &self.vault_prefix,
                    )
                    .context("--vault-addr")?,
                )
            }
        };
        let mut trusted = TrustedKeys::shipped();
        if let Some(path) = &self.trust_publishers {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--trust-publishers {}", path.display()))?;
            let extra = TrustedKeys::from_json(&text)
                .with_context(|| format!("--trust-publishers {}", path.display()))?;
            trusted.extend(extra);
        }
        Ok(ConnectorOptions {
            backend,
            trusted,
            manifests_dir: self.connectors_dir.clone(),
        })
    }
}

/// The Security Center of `serve`.
#[derive(clap::Args, Clone)]
pub struct SecurityArgs {
    /// Minutes between scheduled security scans (0: on demand only).
    #[arg(long, default_value_t = 10)]
    pub security_scan_every_min: u64,
    /// More files or directories the secret scan reads (config files,
    /// environment dumps, logs); the data directory is always read.
    #[arg(long = "security-scan-path")]
    pub scan_paths: Vec<PathBuf>,
    /// Secret rules to use instead of the shipped ones (TOML; see
    /// assets/security/secret-rules.toml for the format).
    #[arg(long)]
    pub secret_rules: Option<PathBuf>,
    /// Clean scans before a finding is resolved.
    #[arg(long, default_value_t = oshal_core::security::DEFAULT_RESOLVE_AFTER)]
    pub resolve_after: u32,
}

impl SecurityArgs {
    /// `--secret-rules`, or the shipped rules: what the controller refuses
    /// at the door and redacts, and its Security Center scans for.
    pub fn rules(&self) -> Result<Arc<SecretRules>> {
        Ok(match &self.secret_rules {
            None => SecretRules::shipped_shared(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("--secret-rules {}", p.display()))?;
                Arc::new(
                    SecretRules::from_toml(&text)
                        .with_context(|| format!("--secret-rules {}", p.display()))?,
                )
            }
        })
    }

    /// The Security Center of a `serve` over `data_dir`: it reads the data
    /// directory, `--security-scan-path` and the connectors'
    /// `--connectors-dir`, and checks the API token file and the
    /// `--vault-token-file` (in fleet mode the platform adds the fleet's
    /// PostgreSQL).
    pub fn config(&self, data_dir: &Path, connectors: &ConnectorArgs) -> Result<SecurityConfig> {
        if self.resolve_after == 0 {
            bail!("--resolve-after must be at least 1");
        }
        let mut scan_paths = vec![data_dir.to_path_buf()];
        scan_paths.extend(self.scan_paths.iter().cloned());
        scan_paths.extend(connectors.connectors_dir.clone());
        let mut token_files = vec![data_dir.join(TOKEN_FILE)];
        token_files.extend(connectors.vault_token_file.clone());
        Ok(SecurityConfig {
            postgres: None,
            scan_paths,
            token_files,
            resolve_after: self.resolve_after,
            surface_routes: oshal_core::api::routes::surface(),
        })
    }
}

/// Which model the bots run.
#[derive(clap::Args, Clone)]
pub struct ModelArgs {
    /// An OpenAI-compatible endpoint (base URL up to /v1); without it the
    /// built-in offline model runs.
    #[arg(long)]
    pub model_url: Option<String>,
    /// The model name to ask the endpoint for.
    #[arg(long, default_value = "default")]
    pub model_name: String,
    /// The price-table id of the endpoint's model (defaults to --model-name).
    #[arg(long)]
    pub model_price_id: Option<String>,
    /// Stream replies from the endpoint.
    #[arg(long)]
    pub model_stream: bool,
    /// Environment variable holding the endpoint's API key.
    #[arg(long)]
    pub model_api_key_env: Option<String>,
    /// Seconds a model call may take.
    #[arg(long, default_value_t = 120)]
    pub model_timeout_s: u64,
    /// The reply's token limit for a ticket that sets no `max_tokens`
    /// (1..=1000000): a runaway reply costs money and holds its bot.
    #[arg(long, default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub model_max_tokens: u32,
    /// A price table to use instead of the shipped one.
    #[arg(long)]
    pub prices: Option<PathBuf>,
    /// Record models missing from the price table at $0, flagged, instead of refusing them.
    #[arg(long)]
    pub allow_unpriced: bool,
}

impl ModelArgs {
    pub fn model(&self) -> Result<Arc<dyn Model>> {
        Ok(match &self.model_url {
            None => Arc::new(BuiltinModel::new()),
            Some(url) => {
                let price_id =
                    ModelId::parse(self.model_price_id.as_deref().unwrap_or(&self.model_name))
                        .context("--model-price-id")?;
                let mut config = OpenAiConfig::new(url.clone(), self.model_name.clone(), price_id);
                config.stream = self.model_stream;
                config.request_timeout = Duration::from_secs(self.model_timeout_s);
                config.default_max_tokens = Some(self.model_max_tokens);
                let key = match &self.model_api_key_env {
                    None => None,
                    Some(var) => Some(
                        std::env::var(var)
                            .with_context(|| format!("--model-api-key-env: ${var} is not set"))?,
                    ),
                };
                Arc::new(OpenAiCompatible::new(config, key)?)
            }
        })
    }

    pub fn prices(&self) -> Result<PriceTable> {
        Ok(match &self.prices {
            None => PriceTable::builtin(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("--prices {}", path.display()))?;
                PriceTable::parse(&text).with_context(|| format!("--prices {}", path.display()))?
            }
        }
        .allow_unpriced(self.allow_unpriced))
    }
}

/// Fleet mode: where the durable store and the lanes are.
#[derive(clap::Args, Clone)]
pub struct FleetArgs {
    /// PostgreSQL URL, connecting as oshal_app (see `oshal db-setup`).
    #[arg(long, env = "OSHAL_POSTGRES", requires = "redis")]
    pub postgres: Option<String>,
    #[arg(long, default_value = "oshal")]
    pub postgres_schema: String,
    /// If given, prepare the database first with this administrator URL.
    #[arg(long, env = "OSHAL_POSTGRES_ADMIN")]
    pub postgres_admin: Option<String>,
    /// Redis URL for the bots' streams.
    #[arg(long, env = "OSHAL_REDIS", requires = "postgres")]
    pub redis: Option<String>,
    /// Every Redis key of this fleet starts with it.
    #[arg(long, default_value = "oshal")]
    pub redis_prefix: String,
}

/// The bots a process runs: the local pool of `serve`, or a node's.
#[derive(clap::Args)]
pub struct PoolArgs {
    /// Bots to run (1..=1024).
    #[arg(long, default_value_t = 4)]
    pub bots: usize,
    /// Skills every bot offers (comma-separated). Defaults to every kind of
    /// work, `chat,tool,signal` (`serve`'s bots reach connectors through its
    /// runtime, a node's through its controller's).
    #[arg(long, value_delimiter = ',')]
    pub skills: Vec<String>,
}

impl PoolArgs {
    /// The bot count and skills, checked.
    pub fn checked(&self, default: &[&str]) -> Result<(usize, Vec<Skill>)> {
        if self.bots == 0 || self.bots > MAX_BOTS {
            bail!("--bots {} is outside 1..={MAX_BOTS}", self.bots);
        }
        let named: Vec<&str> = match self.skills.is_empty() {
            true => default.to_vec(),
            false => self.skills.iter().map(String::as_str).collect(),
        };
        let skills = named
            .iter()
            .map(|s| Skill::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .context("--skills")?;
        Ok((self.bots, skills))
    }
}

/// One ticket, by id, on the API.
#[derive(clap::Args)]
pub struct TicketArgs {
    pub id: String,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// A subcommand of `connectors` or `security`, on the API.
#[derive(clap::Args)]
pub struct ActionArgs<A: clap::Subcommand> {
    #[command(subcommand)]
    pub action: A,
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Prints a reply as pretty JSON; nothing for `null` (a 204).
pub fn print(reply: &serde_json::Value) -> Result<()> {
    if !reply.is_null() {
        println!("{}", serde_json::to_string_pretty(reply)?);
    }
    Ok(())
}

/// A typed reply as JSON, or the API's error as the command's.
pub fn json<T: serde::Serialize>(reply: Result<T, ClientError>) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(reply.map_err(api_error)?)?)
}

pub fn api_error(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Api(api) => {
            let mut msg = api.message.clone();
            if let Some(f) = &api.field {
                msg.push_str(&format!(" (field: {f})"));
            }
            anyhow::anyhow!(msg)
        }
        other => anyhow::anyhow!(other),
    }
}

impl ApiArgs {
    /// A client of `--api` with `--token`, else the token file of `serve`'s
    /// data directory.
    pub fn client(&self) -> Result<Client> {
        let token = match &self.token {
            Some(t) => t.clone(),
            None => {
                let path = self
                    .data_dir
                    .clone()
                    .unwrap_or_else(default_data_dir)
                    .join(TOKEN_FILE);
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no API token: set OSHAL_API_TOKEN or pass --token (looked in {})",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        let trust = match (&self.ca_file, &self.pin_sha256) {
            (Some(file), _) => oshal_core::tls::Trust::ca_file(file)?,
            (None, Some(pin)) => oshal_core::tls::Trust::pin(pin)?,
            (None, None) => oshal_core::tls::Trust::System,
        };
        Ok(Client::with_trust(&self.api, &token, &trust)?)
    }
}
