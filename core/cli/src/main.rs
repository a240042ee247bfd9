//! `oshal`: the headless binary. `serve` runs a controller and the HTTP API,
//! with a local bot pool (local mode) or as a fleet's controller on
//! PostgreSQL and Redis; `node` runs a fleet's bot node; `db-setup` prepares
//! PostgreSQL; the other commands (`security` among them) talk to the API
//! (or, for `bench`, run the platform in-process and measure it).

mod bench;

// The platform's modules, by the names bench uses (`crate::store::…`).
use oshal_core::{bot, clock, controller, lane, model, store, ticket};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use bench::BenchConfig;
use oshal_core::api::client::{Client, ClientError};
use oshal_core::api::http::{self, ApiToken};
use oshal_core::bot::node::{NodeConfig, run_node};
use oshal_core::clock::SystemClock;
use oshal_core::connector::Connectors;
use oshal_core::connector::signing::TrustedKeys;
use oshal_core::controller::fleet::FleetConfig;
use oshal_core::controller::{Controller, ControllerConfig, LocalPool, MAX_BOTS};
use oshal_core::cost::PriceTable;
use oshal_core::model::Model;
use oshal_core::model::builtin::BuiltinModel;
use oshal_core::model::openai::{OpenAiCompatible, OpenAiConfig};
use oshal_core::secrets::SecretRules;
use oshal_core::security::{Listener, SecurityCenter, SecurityConfig};
use oshal_core::store::postgres::{self as pg, PgStore};
use oshal_core::store::sqlite::SqliteStore;
use oshal_core::ticket::{ModelId, NewTicket, Skill, TicketState};

const DEFAULT_LISTEN: &str = "127.0.0.1:7411";
const TOKEN_FILE: &str = "api-token";

#[derive(Parser)]
#[command(
    name = "oshal",
    version,
    about = "Oshal: a control center for fleets of AI-agent bots"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ApiArgs {
    /// The API to talk to.
    #[arg(long, env = "OSHAL_API", default_value = "http://127.0.0.1:7411")]
    api: String,
    /// The API token (else read from DATA_DIR/api-token).
    #[arg(long, env = "OSHAL_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where `oshal serve` keeps its data (for the token file).
    #[arg(long, env = "OSHAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// Connectors: where the token broker keeps credentials, and which
/// publishers and manifests to trust besides the shipped ones. A fleet's
/// controller runs every tool call of its nodes' bots, so these belong to
/// `serve` in both modes.
#[derive(clap::Args, Clone)]
struct ConnectorArgs {
    /// Keep connector credentials in Vault (or OpenBao) at this address,
    /// KV v2, instead of the OS keyring.
    #[arg(long, env = "OSHAL_VAULT_ADDR")]
    vault_addr: Option<String>,
    /// A file holding the Vault token (never a flag: flags show in `ps`).
    #[arg(long, env = "OSHAL_VAULT_TOKEN_FILE", requires = "vault_addr")]
    vault_token_file: Option<PathBuf>,
    /// The KV v2 mount.
    #[arg(long, default_value = "secret")]
    vault_mount: String,
    /// The path under the mount where Oshal's secrets live.
    #[arg(long, default_value = "oshal")]
    vault_prefix: String,
    /// More trusted publisher keys (a publishers.json).
    #[arg(long)]
    trust_publishers: Option<PathBuf>,
    /// A directory of signed connector manifests to load besides the shipped ones.
    #[arg(long)]
    connectors_dir: Option<PathBuf>,
}

impl ConnectorArgs {
    async fn open(
        &self,
        db: oshal_core::connector::store::ConnectorDb,
        rules: Arc<SecretRules>,
    ) -> Result<Connectors> {
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
        let connectors = Connectors::open(db, backend, trusted, rules, Arc::new(SystemClock))
            .await
            .context("opening the connectors")?;
        if let Some(dir) = &self.connectors_dir {
            for (name, e) in connectors.load_dir(dir) {
                eprintln!("oshal: connector {name} refused: {e}");
            }
        }
        Ok(connectors)
    }
}

/// The Security Center of `serve`.
#[derive(clap::Args, Clone)]
struct SecurityArgs {
    /// Minutes between scheduled security scans (0: on demand only).
    #[arg(long, default_value_t = 10)]
    security_scan_every_min: u64,
    /// More files or directories the secret scan reads (config files,
    /// environment dumps, logs); the data directory is always read.
    #[arg(long = "security-scan-path")]
    scan_paths: Vec<PathBuf>,
    /// Secret rules to use instead of the shipped ones (TOML; see
    /// assets/security/secret-rules.toml for the format).
    #[arg(long)]
    secret_rules: Option<PathBuf>,
    /// Clean scans before a finding is resolved.
    #[arg(long, default_value_t = oshal_core::security::DEFAULT_RESOLVE_AFTER)]
    resolve_after: u32,
}

impl SecurityArgs {
    /// `--secret-rules`, or the shipped rules: what the controller refuses
    /// at the door and redacts, and its Security Center scans for.
    fn rules(&self) -> Result<Arc<SecretRules>> {
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

    /// The Security Center of a `serve` over `data_dir`, keeping its
    /// findings in `pool`: it reads the data directory, `--security-scan-path`
    /// and the connectors' `--connectors-dir`, checks the API token file and
    /// the `--vault-token-file`, and in fleet mode the `postgres` target.
    async fn open(
        &self,
        pool: sqlx::SqlitePool,
        controller: Controller,
        data_dir: &Path,
        connectors: &ConnectorArgs,
        postgres: Option<oshal_core::security::postgres::PgTarget>,
    ) -> Result<SecurityCenter> {
        if self.resolve_after == 0 {
            bail!("--resolve-after must be at least 1");
        }
        let mut scan_paths = vec![data_dir.to_path_buf()];
        scan_paths.extend(self.scan_paths.iter().cloned());
        scan_paths.extend(connectors.connectors_dir.clone());
        let mut token_files = vec![data_dir.join(TOKEN_FILE)];
        token_files.extend(connectors.vault_token_file.clone());
        let config = SecurityConfig {
            postgres,
            scan_paths,
            token_files,
            resolve_after: self.resolve_after,
        };
        SecurityCenter::open(pool, controller, config, Arc::new(SystemClock))
            .await
            .context("opening the Security Center")
    }
}

#[derive(Subcommand)]
enum SecurityAction {
    /// Run every check now; print the findings (and write SARIF to FILE).
    Scan {
        #[arg(long)]
        sarif: Option<PathBuf>,
    },
    /// Findings, worst first.
    Findings {
        /// open, suppressed or resolved.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        source: Option<String>,
    },
    /// Each preventive control and the checks that prove it.
    Controls,
    /// Write every unresolved finding as SARIF 2.1.0 (to FILE, or stdout).
    Export { file: Option<PathBuf> },
    /// Import a SARIF 2.1.0 log from another scanner (Trivy, Checkov, Semgrep…).
    Import { file: PathBuf },
    /// Suppress a finding, with a justification, for some days.
    Suppress {
        id: String,
        #[arg(long)]
        reason: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
}

impl SecurityAction {
    async fn run(self, client: &Client) -> Result<serde_json::Value> {
        use reqwest::Method;
        let write = |file: &Path, value: &serde_json::Value| -> Result<()> {
            std::fs::write(file, serde_json::to_vec_pretty(value)?)
                .with_context(|| format!("writing {}", file.display()))
        };
        Ok(match self {
            Self::Scan { sarif } => {
                let report = client
                    .call(Method::POST, "/api/v1/security/scans", &[], None)
                    .await
                    .map_err(api_error)?;
                if let Some(file) = sarif {
                    let log = client
                        .call(Method::GET, "/api/v1/security/sarif", &[], None)
                        .await
                        .map_err(api_error)?;
                    write(&file, &log)?;
                    eprintln!("oshal: SARIF written to {}", file.display());
                }
                report
            }
            Self::Findings { state, source } => {
                let mut q = Vec::new();
                q.extend(state.map(|s| ("state", s)));
                q.extend(source.map(|s| ("source", s)));
                client
                    .call(Method::GET, "/api/v1/security/findings", &q, None)
                    .await
                    .map_err(api_error)?
            }
            Self::Controls => client
                .call(Method::GET, "/api/v1/security/controls", &[], None)
                .await
                .map_err(api_error)?,
            Self::Export { file } => {
                let log = client
                    .call(Method::GET, "/api/v1/security/sarif", &[], None)
                    .await
                    .map_err(api_error)?;
                match file {
                    Some(f) => {
                        write(&f, &log)?;
                        serde_json::Value::Null
                    }
                    None => log,
                }
            }
            Self::Import { file } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("{}", file.display()))?;
                let log: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", file.display()))?;
                client
                    .call(Method::POST, "/api/v1/security/sarif", &[], Some(&log))
                    .await
                    .map_err(api_error)?
            }
            Self::Suppress { id, reason, days } => {
                let body = serde_json::json!({ "reason": reason, "days": days });
                client
                    .call(
                        Method::POST,
                        &format!("/api/v1/security/findings/{id}/suppress"),
                        &[],
                        Some(&body),
                    )
                    .await
                    .map_err(api_error)?
            }
        })
    }
}

/// Which model the bots run.
#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// An OpenAI-compatible endpoint (base URL up to /v1); without it the
    /// built-in offline model runs.
    #[arg(long)]
    model_url: Option<String>,
    /// The model name to ask the endpoint for.
    #[arg(long, default_value = "default")]
    model_name: String,
    /// The price-table id of the endpoint's model (defaults to --model-name).
    #[arg(long)]
    model_price_id: Option<String>,
    /// Stream replies from the endpoint.
    #[arg(long)]
    model_stream: bool,
    /// Environment variable holding the endpoint's API key.
    #[arg(long)]
    model_api_key_env: Option<String>,
    /// Seconds a model call may take.
    #[arg(long, default_value_t = 120)]
    model_timeout_s: u64,
    /// The reply's token limit for a ticket that sets no `max_tokens`
    /// (1..=1000000): a runaway reply costs money and holds its bot.
    #[arg(long, default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    model_max_tokens: u32,
    /// A price table to use instead of the shipped one.
    #[arg(long)]
    prices: Option<PathBuf>,
    /// Record models missing from the price table at $0, flagged, instead of refusing them.
    #[arg(long)]
    allow_unpriced: bool,
}

impl ModelArgs {
    fn model(&self) -> Result<Arc<dyn Model>> {
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

    fn prices(&self) -> Result<PriceTable> {
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
struct FleetArgs {
    /// PostgreSQL URL, connecting as oshal_app (see `oshal db-setup`).
    #[arg(long, env = "OSHAL_POSTGRES", requires = "redis")]
    postgres: Option<String>,
    #[arg(long, default_value = "oshal")]
    postgres_schema: String,
    /// If given, prepare the database first with this administrator URL.
    #[arg(long, env = "OSHAL_POSTGRES_ADMIN")]
    postgres_admin: Option<String>,
    /// Redis URL for the bots' streams.
    #[arg(long, env = "OSHAL_REDIS", requires = "postgres")]
    redis: Option<String>,
    /// Every Redis key of this fleet starts with it.
    #[arg(long, default_value = "oshal")]
    redis_prefix: String,
}

/// The bots a process runs: the local pool of `serve`, or a node's.
#[derive(clap::Args)]
struct PoolArgs {
    /// Bots to run (1..=1024).
    #[arg(long, default_value_t = 4)]
    bots: usize,
    /// Skills every bot offers (comma-separated). Defaults to `chat,tool`:
    /// `serve`'s bots reach connectors through its runtime, a node's
    /// through its controller's.
    #[arg(long, value_delimiter = ',')]
    skills: Vec<String>,
}

impl PoolArgs {
    /// The bot count and skills, checked.
    fn checked(&self, default: &[&str]) -> Result<(usize, Vec<Skill>)> {
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

#[derive(Subcommand)]
enum ConnectorAction {
    /// Every connector, curated and catalog.
    List,
    /// Imported catalog entries, approved or not.
    Catalog,
    /// Import an OpenAPI 3 document (JSON) as a disabled catalog entry.
    Import { file: PathBuf },
    /// Approve a catalog entry, which enables it.
    Approve { id: String },
    /// Live grants, optionally of one bot.
    Grants {
        #[arg(long)]
        bot: Option<String>,
    },
    /// Let a bot call operations of a connector.
    Grant {
        #[arg(long)]
        bot: String,
        #[arg(long)]
        connector: String,
        #[arg(long, value_delimiter = ',', required = true)]
        operations: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// A numeric ceiling on a parameter, `amount<=100` (repeatable).
        #[arg(long = "condition")]
        conditions: Vec<String>,
        #[arg(long)]
        rate_per_minute: Option<u32>,
        #[arg(long)]
        budget_calls: Option<u32>,
    },
    /// Revoke a grant.
    Revoke { grant: String },
    /// Store a connector's credential (a JSON object in FILE; never a flag).
    Credential { id: String, file: PathBuf },
    /// The audit trail (decisions, credential reads, refreshes, revocations).
    Audit {
        #[arg(long)]
        ticket: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
    /// The effect ledger: every write sent to an outside system.
    Effects {
        #[arg(long)]
        ticket: Option<String>,
        #[arg(long, default_value_t = 200)]
        limit: u32,
    },
}

impl ConnectorAction {
    async fn run(self, client: &Client) -> Result<serde_json::Value> {
        use reqwest::Method;
        let read_json = |file: &Path| -> Result<serde_json::Value> {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))
        };
        let trail = |ticket: Option<String>, limit: u32| {
            let mut q = vec![("limit", limit.to_string())];
            q.extend(ticket.map(|t| ("ticket", t)));
            q
        };
        let r = match self {
            Self::List => {
                client
                    .call(Method::GET, "/api/v1/connectors", &[], None)
                    .await
            }
            Self::Catalog => client.call(Method::GET, "/api/v1/catalog", &[], None).await,
            Self::Import { file } => {
                let doc = read_json(&file)?;
                client
                    .call(Method::POST, "/api/v1/catalog/import", &[], Some(&doc))
                    .await
            }
            Self::Approve { id } => {
                client
                    .call(
                        Method::POST,
                        &format!("/api/v1/catalog/{id}/approve"),
                        &[],
                        None,
                    )
                    .await
            }
            Self::Grants { bot } => {
                let q: Vec<_> = bot.map(|b| ("bot", b)).into_iter().collect();
                client.call(Method::GET, "/api/v1/grants", &q, None).await
            }
            Self::Grant {
                bot,
                connector,
                operations,
                scopes,
                conditions,
                rate_per_minute,
                budget_calls,
            } => {
                let conditions = conditions
                    .iter()
                    .map(|c| {
                        let (param, max) = c.split_once("<=").with_context(|| {
                            format!("--condition {c:?}: write it as param<=max")
                        })?;
                        let max: f64 = max.trim().parse().with_context(|| {
                            format!("--condition {c:?}: {max:?} is not a number")
                        })?;
                        Ok(serde_json::json!({ "param": param.trim(), "max": max }))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let body = serde_json::json!({
                    "bot": bot, "connector": connector, "operations": operations, "scopes": scopes,
                    "conditions": conditions, "rate_per_minute": rate_per_minute, "budget_calls": budget_calls,
                });
                client
                    .call(Method::POST, "/api/v1/grants", &[], Some(&body))
                    .await
            }
            Self::Revoke { grant } => {
                client
                    .call(
                        Method::DELETE,
                        &format!("/api/v1/grants/{grant}"),
                        &[],
                        None,
                    )
                    .await
            }
            Self::Credential { id, file } => {
                let value = read_json(&file)?;
                client
                    .call(
                        Method::PUT,
                        &format!("/api/v1/connectors/{id}/credential"),
                        &[],
                        Some(&value),
                    )
                    .await
            }
            Self::Audit { ticket, limit } => {
                client
                    .call(Method::GET, "/api/v1/audit", &trail(ticket, limit), None)
                    .await
            }
            Self::Effects { ticket, limit } => {
                client
                    .call(Method::GET, "/api/v1/effects", &trail(ticket, limit), None)
                    .await
            }
        };
        r.map_err(api_error)
    }
}

// Parsed once at start; boxing a variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run a controller and the HTTP API: with a local bot pool on SQLite
    /// (local mode, the default), or, given --postgres and --redis, as the
    /// controller of a fleet whose bots run in `oshal node` processes.
    Serve {
        #[arg(long, env = "OSHAL_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Serve the control center's web UI (a built `ui/dist`) at `/`.
        #[arg(long, env = "OSHAL_UI_DIR")]
        ui_dir: Option<PathBuf>,
        /// The local pool (local mode).
        #[command(flatten)]
        pool: PoolArgs,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        connectors: ConnectorArgs,
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Run a bot node of a fleet: N bots, each consuming its own Redis stream.
    Node {
        #[arg(long, env = "OSHAL_REDIS")]
        redis: String,
        /// The fleet's key prefix (the controller's --redis-prefix).
        #[arg(long, default_value = "oshal")]
        redis_prefix: String,
        /// This node's name; its bots are NAME-bot-NN. Defaults to host-pid.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        pool: PoolArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Prepare a PostgreSQL database for fleet mode, as an administrator:
    /// creates the roles oshal_owner, oshal_app and oshal_readonly, the
    /// schema, and runs the migrations.
    DbSetup {
        /// An administrator's URL (a role that may create roles and schemas).
        #[arg(long, env = "OSHAL_POSTGRES_ADMIN")]
        admin: String,
        #[arg(long, default_value = "oshal")]
        schema: String,
    },
    /// Submit a ticket.
    Submit {
        /// The prompt of a chat ticket.
        prompt: Option<String>,
        #[arg(long, default_value = "chat")]
        kind: String,
        /// The payload as JSON (instead of a prompt).
        #[arg(long)]
        payload: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        idempotency_key: Option<String>,
        #[arg(long)]
        priority: Option<u8>,
        /// Wait until the ticket finishes and print it.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List tickets, newest first.
    Tickets {
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show one ticket in full.
    Ticket {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Connectors: list them, import and approve catalog entries, grant and
    /// revoke, store a credential, read the audit trail and the effect ledger.
    Connectors {
        #[command(subcommand)]
        action: ConnectorAction,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The Security Center: scan now, list findings and controls, export
    /// and import SARIF, suppress a finding with a reason.
    Security {
        #[command(subcommand)]
        action: SecurityAction,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Cancel a ticket.
    Cancel {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Measure local mode end to end (durable SQLite, built-in model).
    Bench {
        #[arg(long, default_value_t = 50_000)]
        tickets: usize,
        /// Bots (local: in the pool, default 26; fleet: per node, default 13).
        #[arg(long)]
        bots: Option<usize>,
        /// Where scratch stores go (removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Measure fleet mode instead: PostgreSQL and Redis, nodes on streams.
        #[arg(long, requires_all = ["redis", "postgres"])]
        fleet: bool,
        #[arg(long, env = "OSHAL_REDIS")]
        redis: Option<String>,
        /// An administrator's URL: the bench creates and drops a scratch schema.
        #[arg(long, env = "OSHAL_POSTGRES_ADMIN")]
        postgres: Option<String>,
        #[arg(long, default_value_t = 2)]
        nodes: usize,
        /// One-at-a-time tickets for the round-trip latency (fleet).
        #[arg(long, default_value_t = 500)]
        sequential: usize,
    },
}

fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("oshal"))
        .unwrap_or_else(|| PathBuf::from(".oshal"))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            data_dir,
            listen,
            ui_dir,
            pool,
            model,
            fleet,
            connectors,
            security,
        } => {
            let prices = model.prices()?;
            let data_dir = data_dir.unwrap_or_else(default_data_dir);
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("cannot create {}", data_dir.display()))?;
            let rules = security.rules()?;
            // Each mode opens its stores, controller and Security Center;
            // `close` closes its stores once the API has stopped.
            let (controller, center, what, close): (_, _, _, futures::future::BoxFuture<()>) =
                if let (Some(postgres), Some(redis)) = (&fleet.postgres, &fleet.redis) {
                    if let Some(admin) = &fleet.postgres_admin {
                        pg::setup(admin, &fleet.postgres_schema)
                            .await
                            .context("--postgres-admin")?;
                    }
                    let store = PgStore::connect(postgres, &fleet.postgres_schema)
                        .await
                        .context("--postgres")?;
                    let config = ControllerConfig {
                        prices,
                        auto_create_tenants: true,
                        secret_rules: rules.clone(),
                        ..ControllerConfig::default()
                    };
                    let fleet_config = FleetConfig {
                        redis_url: redis.clone(),
                        prefix: fleet.redis_prefix.clone(),
                    };
                    let tools = connectors
                        .open(
                            oshal_core::connector::store::postgres(store.pool().clone()),
                            rules,
                        )
                        .await?;
                    let controller = Controller::start_fleet(
                        config,
                        Arc::new(store.clone()),
                        fleet_config,
                        Arc::new(SystemClock),
                        Some(tools),
                    )
                    .await
                    .context("--redis")?;
                    let what = format!(
                        "fleet mode, store postgres schema {}, lanes redis prefix {}",
                        fleet.postgres_schema, fleet.redis_prefix
                    );
                    // The controller's own state (security findings) lives in
                    // SQLite in the data directory; the fleet's in PostgreSQL.
                    let local = SqliteStore::open(&data_dir).await?;
                    let app_role = url::Url::parse(postgres)
                        .ok()
                        .map(|u| u.username().to_owned())
                        .filter(|u| !u.is_empty())
                        .unwrap_or_else(|| pg::APP_ROLE.to_owned());
                    let target = oshal_core::security::postgres::PgTarget {
                        pool: store.pool().clone(),
                        schema: fleet.postgres_schema.clone(),
                        app_role,
                    };
                    let center = security
                        .open(
                            local.pool().clone(),
                            controller.clone(),
                            &data_dir,
                            &connectors,
                            Some(target),
                        )
                        .await?;
                    let close = Box::pin(async move {
                        store.close().await;
                        local.close().await;
                    });
                    (controller, center, what, close)
                } else {
                    let (bots, skills) = pool.checked(&["chat", "tool"])?;
                    let model = model.model()?;
                    let store = Arc::new(SqliteStore::open(&data_dir).await?);
                    let what = format!(
                        "local mode, {bots} bots on model {}, data in {}",
                        model.id(),
                        data_dir.display()
                    );
                    let config = ControllerConfig {
                        prices,
                        secret_rules: rules.clone(),
                        ..ControllerConfig::default()
                    };
                    let tools = connectors
                        .open(
                            oshal_core::connector::store::sqlite(store.pool().clone()),
                            rules,
                        )
                        .await?;
                    let pool = LocalPool {
                        bots,
                        skills,
                        model,
                        tools: Some(tools),
                    };
                    let controller =
                        Controller::start(config, store.clone(), pool, Arc::new(SystemClock))
                            .await?;
                    let center = security
                        .open(
                            store.pool().clone(),
                            controller.clone(),
                            &data_dir,
                            &connectors,
                            None,
                        )
                        .await?;
                    let close = Box::pin(async move { store.close().await });
                    (controller, center, what, close)
                };
            let every = security.security_scan_every_min;
            serve(
                &data_dir,
                listen,
                ui_dir.as_deref(),
                controller,
                center,
                every,
                &what,
            )
            .await?;
            close.await;
            Ok(())
        }
        Command::Node {
            redis,
            redis_prefix,
            name,
            pool,
            model,
        } => {
            let (bots, skills) = pool.checked(&["chat", "tool"])?;
            let name = name.unwrap_or_else(|| {
                let host = std::fs::read_to_string("/etc/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| "node".into());
                format!("{host}-{}", std::process::id())
            });
            let prices = model.prices()?;
            let model = model.model()?;
            // Refuse here what the controller would refuse: a model with no price.
            prices.check(model.id())?;
            let config = NodeConfig {
                redis_url: redis,
                prefix: redis_prefix,
                name: name.clone(),
                bots,
                skills,
                model,
            };
            let shutdown = cancel_on_signal();
            let node = tokio::spawn(run_node(config, Arc::new(SystemClock), shutdown.clone()));
            // Tests and scripts wait for this line on stdout.
            println!("node {name} up with {bots} bots");
            node.await??;
            eprintln!("oshal: node {name} stopped; its bots' work was handed back");
            Ok(())
        }
        Command::DbSetup { admin, schema } => {
            pg::setup(&admin, &schema).await?;
            println!(
                "schema {schema} ready; the controller connects as {} (set its password with ALTER ROLE)",
                pg::APP_ROLE
            );
            Ok(())
        }
        Command::Submit {
            prompt,
            kind,
            payload,
            tenant,
            idempotency_key,
            priority,
            wait,
            api,
        } => {
            let payload = match (payload, prompt) {
                (Some(p), _) => serde_json::from_str(&p).context("--payload is not JSON")?,
                (None, Some(prompt)) => serde_json::json!({ "prompt": prompt }),
                (None, None) => bail!("give a prompt, or --payload JSON"),
            };
            let client = client(&api)?;
            let ticket = NewTicket {
                kind,
                payload,
                tenant,
                idempotency_key,
                priority,
                ..NewTicket::default()
            };
            let submitted = client.submit(&ticket).await.map_err(api_error)?;
            if !wait {
                println!("{}", serde_json::to_string_pretty(&submitted)?);
                return Ok(());
            }
            let id = submitted.id.to_string();
            loop {
                let view = client.ticket(&id).await.map_err(api_error)?;
                if view.state.is_terminal() {
                    println!("{}", serde_json::to_string_pretty(&view)?);
                    if view.state != TicketState::Succeeded {
                        bail!("ticket {id} ended {}", view.state);
                    }
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Command::Tickets {
            state,
            limit,
            cursor,
            api,
        } => {
            let state = state
                .map(|s| {
                    TicketState::parse(&s)
                        .with_context(|| format!("--state {s:?} is not a ticket state"))
                })
                .transpose()?;
            let cursor = cursor
                .map(|c| oshal_core::ticket::TicketId::parse(&c))
                .transpose()
                .context("--cursor")?;
            let page = client(&api)?
                .tickets(state, limit, cursor)
                .await
                .map_err(api_error)?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:<36}  {:<17}  {:>3}  {:<8}  {:<12}  KIND",
                "ID", "STATE", "TRY", "BOT", "TENANT"
            )?;
            for t in &page.tickets {
                let bot = t.bot.as_ref().map_or("-", |b| b.as_str());
                writeln!(
                    out,
                    "{:<36}  {:<17}  {:>3}  {:<8}  {:<12}  {}",
                    t.id, t.state, t.attempts, bot, t.tenant, t.kind
                )?;
            }
            if let Some(next) = page.next_cursor {
                writeln!(out, "(more: --cursor {next})")?;
            }
            Ok(())
        }
        Command::Ticket { id, api } => {
            let view = client(&api)?.ticket(&id).await.map_err(api_error)?;
            println!("{}", serde_json::to_string_pretty(&view)?);
            Ok(())
        }
        Command::Connectors { action, api } => {
            let reply = action.run(&client(&api)?).await?;
            if !reply.is_null() {
                println!("{}", serde_json::to_string_pretty(&reply)?);
            }
            Ok(())
        }
        Command::Security { action, api } => {
            let reply = action.run(&client(&api)?).await?;
            if !reply.is_null() {
                println!("{}", serde_json::to_string_pretty(&reply)?);
            }
            Ok(())
        }
        Command::Cancel { id, api } => {
            let view = client(&api)?.cancel(&id).await.map_err(api_error)?;
            println!("ticket {} is {}", view.id, view.state);
            Ok(())
        }
        Command::Bench {
            tickets,
            bots,
            dir,
            fleet,
            redis,
            postgres,
            nodes,
            sequential,
        } => {
            if fleet {
                let bots = bots.unwrap_or(13);
                if tickets == 0 || bots == 0 || nodes == 0 || nodes * bots > MAX_BOTS {
                    bail!(
                        "--tickets, --nodes and --bots must be at least 1, and nodes × bots at most {MAX_BOTS}"
                    );
                }
                let (Some(redis), Some(postgres)) = (redis, postgres) else {
                    bail!("--fleet needs --redis and --postgres");
                };
                let report = bench::fleet::run_fleet(bench::fleet::FleetBenchConfig {
                    tickets,
                    nodes,
                    bots,
                    postgres_admin: postgres,
                    redis,
                    sequential,
                })
                .await?;
                println!(
                    "fleet nodes={nodes} bots_per_node={bots} streams={} admit_p50_ms={:.3} sequential_commits={:.2} sequential_store_ms={:.3} loaded_p50_ms={:.1} ledger_rows={} commits={} rows_per_commit={:.0} store_busy={:.2}",
                    nodes * bots,
                    report.admit_p50_ms,
                    report.sequential_commits,
                    report.sequential_store_ms,
                    report.loaded_p50_ms,
                    report.ledger_rows,
                    report.commits,
                    report.rows_per_commit,
                    report.store_busy
                );
                println!("{}", report.line());
                if report.lost > 0 || report.ledger_rows != report.ok as i64 {
                    bail!(
                        "bench found lost tickets or a ledger that does not match the finished attempts"
                    );
                }
                return Ok(());
            }
            let bots = bots.unwrap_or(26);
            if tickets == 0 || bots == 0 {
                bail!("--tickets and --bots must be at least 1");
            }
            let cfg = BenchConfig {
                tickets,
                bots,
                dir: dir.unwrap_or_else(std::env::temp_dir),
                ..BenchConfig::default()
            };
            let report = bench::run_local(cfg).await?;
            println!(
                "baseline sqlite_ticket_inserts_per_s={:.0} (durable batches of 500, same schema and pragmas)",
                report.baseline_inserts_per_s
            );
            println!(
                "store commits={} rows_per_commit={:.0} ledger_rows={} ratio_to_baseline={:.2}",
                report.commits,
                report.rows_per_commit,
                report.ledger_rows,
                report.tickets_per_s / report.baseline_inserts_per_s
            );
            println!("{}", report.line());
            if report.lost > 0 || report.ledger_rows != report.ok as i64 {
                bail!(
                    "bench found lost tickets or a ledger that does not match the finished attempts"
                );
            }
            Ok(())
        }
    }
}

fn api_error(e: ClientError) -> anyhow::Error {
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

fn client(api: &ApiArgs) -> Result<Client> {
    let token = match &api.token {
        Some(t) => t.clone(),
        None => {
            let path = api
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
    Ok(Client::new(&api.api, &token)?)
}

/// The token `serve` requires: `OSHAL_API_TOKEN`, else the one in the data
/// directory, else a new one written there readable by the owner only.
fn load_or_create_token(dir: &Path) -> Result<ApiToken> {
    if let Ok(t) = std::env::var("OSHAL_API_TOKEN") {
        return ApiToken::new(t).map_err(|e| anyhow::anyhow!(e.message));
    }
    let path = dir.join(TOKEN_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return ApiToken::new(existing.trim())
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message));
    }
    let token = ApiToken::generate();
    let tmp = dir.join(format!(".{TOKEN_FILE}.tmp"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(token.expose().as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(token)
}

async fn serve(
    data_dir: &Path,
    listen: SocketAddr,
    ui_dir: Option<&Path>,
    controller: Controller,
    security: SecurityCenter,
    scan_every_min: u64,
    what: &str,
) -> Result<()> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let token = load_or_create_token(data_dir)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let shutdown = cancel_on_signal();
    eprintln!(
        "oshal: {what}\noshal: API on http://{addr} (token in {})",
        data_dir.join(TOKEN_FILE).display()
    );
    if let Some(ui) = ui_dir {
        if !ui.join("index.html").is_file() {
            bail!(
                "--ui-dir {}: no index.html there (build it with `npm run build` in ui/)",
                ui.display()
            );
        }
        // The token is not printed: open the page and paste it, or append
        // `#token=<token>` (a fragment never reaches a server or its log).
        eprintln!("oshal: control center on http://{addr}/");
    }
    security.add_listener(Listener { addr, tls: false });
    if scan_every_min > 0 {
        security.spawn_schedule(Duration::from_secs(scan_every_min * 60), shutdown.clone());
    }
    // Tests and scripts wait for this line on stdout.
    println!("listening on http://{addr}");
    http::serve(
        controller.clone(),
        Some(security),
        listener,
        token,
        ui_dir,
        shutdown,
    )
    .await?;
    controller.shutdown().await;
    eprintln!("oshal: stopped cleanly");
    Ok(())
}

/// A token cancelled on SIGTERM or Ctrl-C.
fn cancel_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            shutdown.cancel();
        }
    });
    shutdown
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
