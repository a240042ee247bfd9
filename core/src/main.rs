//! `oshal`: the headless binary. `serve` runs a controller with a local bot
//! pool and the HTTP API; the other commands talk to that API (or, for
//! `bench`, run the platform in-process and measure it).

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use oshal_core::api::client::{Client, ClientError};
use oshal_core::api::http::{self, ApiToken};
use oshal_core::bench::{self, BenchConfig};
use oshal_core::clock::SystemClock;
use oshal_core::controller::{Controller, ControllerConfig, LocalPool};
use oshal_core::cost::PriceTable;
use oshal_core::model::Model;
use oshal_core::model::builtin::BuiltinModel;
use oshal_core::model::openai::{OpenAiCompatible, OpenAiConfig};
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

#[derive(Subcommand)]
enum Command {
    /// Run a controller with a local bot pool and the HTTP API (local mode).
    Serve {
        #[arg(long, env = "OSHAL_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[arg(long, default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Bots in the local pool.
        #[arg(long, default_value_t = 4)]
        bots: usize,
        /// Skills every local bot offers (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "chat")]
        skills: Vec<String>,
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
        /// A price table to use instead of the shipped one.
        #[arg(long)]
        prices: Option<PathBuf>,
        /// Record models missing from the price table at $0, flagged, instead of refusing them.
        #[arg(long)]
        allow_unpriced: bool,
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
        #[arg(long, default_value_t = 26)]
        bots: usize,
        /// Where scratch stores go (removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
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
            bots,
            skills,
            model_url,
            model_name,
            model_price_id,
            model_stream,
            model_api_key_env,
            model_timeout_s,
            prices,
            allow_unpriced,
        } => {
            let model: Arc<dyn Model> = match model_url {
                None => Arc::new(BuiltinModel::new()),
                Some(url) => {
                    let price_id = ModelId::parse(model_price_id.as_deref().unwrap_or(&model_name))
                        .context("--model-price-id")?;
                    let mut config = OpenAiConfig::new(url, model_name, price_id);
                    config.stream = model_stream;
                    config.request_timeout = Duration::from_secs(model_timeout_s);
                    let key =
                        match model_api_key_env {
                            None => None,
                            Some(var) => Some(std::env::var(&var).with_context(|| {
                                format!("--model-api-key-env: ${var} is not set")
                            })?),
                        };
                    Arc::new(OpenAiCompatible::new(config, key)?)
                }
            };
            let prices = match prices {
                None => PriceTable::builtin(),
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("--prices {}", path.display()))?;
                    PriceTable::parse(&text)
                        .with_context(|| format!("--prices {}", path.display()))?
                }
            }
            .allow_unpriced(allow_unpriced);
            let skills = skills
                .iter()
                .map(|s| Skill::parse(s))
                .collect::<Result<Vec<_>, _>>()
                .context("--skills")?;
            if bots == 0 || bots > 1024 {
                bail!("--bots {bots} is outside 1..=1024");
            }
            serve(
                data_dir.unwrap_or_else(default_data_dir),
                listen,
                LocalPool {
                    bots,
                    skills,
                    model,
                },
                prices,
            )
            .await
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
        Command::Cancel { id, api } => {
            let view = client(&api)?.cancel(&id).await.map_err(api_error)?;
            println!("ticket {} is {}", view.id, view.state);
            Ok(())
        }
        Command::Bench { tickets, bots, dir } => {
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
    data_dir: PathBuf,
    listen: SocketAddr,
    pool: LocalPool,
    prices: PriceTable,
) -> Result<()> {
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let token = load_or_create_token(&data_dir)?;
    let store = Arc::new(SqliteStore::open(&data_dir).await?);
    let bots = pool.bots;
    let model = pool.model.id().clone();
    let config = ControllerConfig {
        prices,
        ..ControllerConfig::default()
    };
    let controller = Controller::start(config, store.clone(), pool, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            shutdown.cancel();
        }
    });
    eprintln!(
        "oshal: local mode, {bots} bots on model {model}, data in {}\noshal: API on http://{addr} (token in {})",
        data_dir.display(),
        data_dir.join(TOKEN_FILE).display()
    );
    // Tests and scripts wait for this line on stdout.
    println!("listening on http://{addr}");
    http::serve(controller.clone(), listener, token, shutdown).await?;
    controller.shutdown().await;
    store.close().await;
    eprintln!("oshal: stopped cleanly");
    Ok(())
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
