//! `oshal serve`: a controller and the HTTP API, in local mode (a bot pool
//! on SQLite, the default) or as a fleet's controller (`--postgres` and
//! `--redis`; its bots run in `oshal node` processes). Both modes open
//! through the platform's one constructor each ([`Platform::local`],
//! [`Platform::fleet`]), the same the desktop app and the benches use.

use anyhow::{Context, Result, bail};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oshal_core::api::http::{self, ApiToken};
use oshal_core::controller::ControllerConfig;
use oshal_core::mode::{FleetOptions, LocalOptions, Platform};
use oshal_core::security::Listener;
use oshal_core::tls::{Loaded, TlsFiles};

use crate::args::{
    ConnectorArgs, FleetArgs, ModelArgs, PoolArgs, SecurityArgs, TOKEN_FILE, default_data_dir,
};
use crate::shutdown::cancel_on_signal;

const DEFAULT_LISTEN: &str = "127.0.0.1:7411";

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = "OSHAL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Serve the API over TLS with this certificate chain (PEM), reloaded
    /// when the file changes; needs --tls-key.
    #[arg(long, env = "OSHAL_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "OSHAL_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Read the API token from this file (a container's secret) instead
    /// of `OSHAL_API_TOKEN` or the data directory's.
    #[arg(long, env = "OSHAL_API_TOKEN_FILE")]
    api_token_file: Option<PathBuf>,
    /// Serve the control center's web UI from this directory (a built
    /// `ui/dist`) at `/` instead of the one built into the binary.
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
    #[command(flatten)]
    mesh: MeshArgs,
}

/// Where the mesh of remote nodes is read from (`oshal mesh`, the API's
/// `/api/v1/mesh`).
#[derive(clap::Args)]
struct MeshArgs {
    /// Headscale's URL (its API key is stored with `oshal mesh key`, in the
    /// secret backend, never in a flag or a file of Oshal's).
    #[arg(long, env = "OSHAL_HEADSCALE_URL")]
    headscale_url: Option<String>,
    /// The Headscale user new nodes' keys are minted for (0.26 and 0.27
    /// need one; 0.28 mints a tagged key without).
    #[arg(long, env = "OSHAL_HEADSCALE_USER")]
    headscale_user: Option<String>,
    /// tailscaled's LocalAPI socket on this host
    /// (`/var/run/tailscale/tailscaled.sock`).
    #[arg(long, env = "OSHAL_TAILSCALE_SOCKET")]
    tailscale_socket: Option<PathBuf>,
    /// A static list of nodes (JSON: `[{"name", "addresses", "tags"}]`)
    /// for a mesh with neither.
    #[arg(long)]
    mesh_static: Option<PathBuf>,
    /// The container engine's API socket (Docker's, which Podman serves:
    /// `podman system service`), for the deployment's containers.
    #[arg(long, env = "OSHAL_CONTAINERS_SOCKET")]
    containers_socket: Option<PathBuf>,
    /// A service the tailnet policy must let nodes reach, `NAME=IP:PORT`
    /// (repeat; e.g. `controller=100.64.0.1:7411`, `redis=100.64.0.1:6379`).
    #[arg(long = "mesh-service")]
    mesh_services: Vec<String>,
    /// The fleet's Redis as a node reaches it over the mesh (what `oshal
    /// mesh enrol` prints for the node).
    #[arg(long)]
    mesh_redis_url: Option<String>,
    /// The port a node's round trip is measured to (a TCP handshake,
    /// accepted or refused); 0 measures none.
    #[arg(long, default_value_t = 7411)]
    mesh_probe_port: u16,
}

impl MeshArgs {
    fn options(&self, redis_prefix: &str) -> Result<oshal_core::mesh::MeshOptions> {
        let static_list = match &self.mesh_static {
            None => None,
            Some(file) => {
                let bytes = std::fs::read(file)
                    .with_context(|| format!("--mesh-static {}", file.display()))?;
                let body = oshal_mesh::json(&bytes)
                    .map_err(|r| anyhow::anyhow!("--mesh-static {}: {r}", file.display()))?;
                Some((file.display().to_string(), body))
            }
        };
        let mut services = Vec::new();
        for s in &self.mesh_services {
            let parsed = s.split_once('=').and_then(|(name, addr)| {
                let addr: SocketAddr = addr.parse().ok()?;
                (!name.is_empty()).then(|| oshal_mesh::policy::Service {
                    name: name.to_owned(),
                    address: addr.ip(),
                    port: addr.port(),
                })
            });
            services.push(
                parsed.with_context(|| format!("--mesh-service {s:?}: expected NAME=IP:PORT"))?,
            );
        }
        Ok(oshal_core::mesh::MeshOptions {
            headscale_url: self.headscale_url.clone(),
            headscale_user: self.headscale_user.clone(),
            tailscale_socket: self.tailscale_socket.clone(),
            static_list,
            containers_socket: self.containers_socket.clone(),
            services,
            redis_url: self.mesh_redis_url.clone(),
            redis_prefix: redis_prefix.to_owned(),
            probe_port: self.mesh_probe_port,
            edge: oshal_core::tls::Edge::default(),
        })
    }
}

pub async fn run(args: Args) -> Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let controller = ControllerConfig {
        prices: args.model.prices()?,
        secret_rules: args.security.rules()?,
        ..ControllerConfig::default()
    };
    let connectors = Some(args.connectors.options()?);
    let mesh = args.mesh.options(&args.fleet.redis_prefix)?;
    let security = Some(args.security.config(&data_dir, &args.connectors)?);
    let platform = match (&args.fleet.postgres, &args.fleet.redis) {
        (Some(postgres), Some(redis)) => Platform::fleet(FleetOptions {
            postgres: postgres.clone(),
            schema: args.fleet.postgres_schema.clone(),
            postgres_admin: args.fleet.postgres_admin.clone(),
            redis: redis.clone(),
            prefix: args.fleet.redis_prefix.clone(),
            controller,
            connectors,
            security,
            data_dir: data_dir.clone(),
            store_hook: None,
        })
        .await
        .context("opening fleet mode (--postgres, --redis)")?,
        _ => {
            let (bots, skills) = args.pool.checked(oshal_core::ticket::Work::KINDS)?;
            Platform::local(LocalOptions {
                data_dir: data_dir.clone(),
                bots,
                skills,
                model: args.model.model()?,
                controller,
                connectors,
                security,
            })
            .await
            .context("opening local mode")?
        }
    };
    let every = args.security.security_scan_every_min;
    let edge = mesh.edge.clone();
    let mesh = oshal_core::mesh::Mesh::new(mesh, platform.controller.clone())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (token, token_at) = load_or_create_token(&data_dir, args.api_token_file.as_deref())?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let files = TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            };
            let loaded = files.load()?;
            Some((files, loaded))
        }
        _ => None,
    };
    let surface = Surface {
        listen: args.listen,
        tls,
        edge,
        ui_dir: args.ui_dir.as_deref(),
        token,
        token_at: &token_at,
    };
    let served = serve(surface, &platform, mesh, every).await;
    platform.shutdown().await;
    served?;
    eprintln!("oshal: stopped cleanly");
    Ok(())
}

/// Where and how the API is served.
struct Surface<'a> {
    listen: SocketAddr,
    tls: Option<(TlsFiles, Loaded)>,
    edge: oshal_core::tls::Edge,
    ui_dir: Option<&'a Path>,
    token: ApiToken,
    token_at: &'a str,
}

/// Serves the API (and the UI) until SIGTERM or Ctrl-C.
async fn serve(
    surface: Surface<'_>,
    platform: &Platform,
    mesh: oshal_core::mesh::Mesh,
    scan_every_min: u64,
) -> Result<()> {
    let Surface {
        listen,
        tls,
        edge,
        ui_dir,
        token,
        token_at,
    } = surface;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let shutdown = cancel_on_signal();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let certificate = tls
        .as_ref()
        .map(|(_, l)| format!(", certificate sha256 {}", l.fingerprint))
        .unwrap_or_default();
    eprintln!(
        "oshal: {}\noshal: API on {scheme}://{addr} (token in {token_at}{certificate})",
        platform.describe,
    );
    if let Some(ui) = ui_dir
        && !ui.join("index.html").is_file()
    {
        bail!(
            "--ui-dir {}: no index.html there (build it with `npm run build` in ui/)",
            ui.display()
        );
    }
    if ui_dir.is_some() || oshal_core::api::http::ui::built_in() {
        // The token is not printed: open the page and paste it, or append
        // `#token=<token>` (a fragment never reaches a server or its log).
        eprintln!("oshal: control center on {scheme}://{addr}/");
    }
    if let Some(security) = &platform.security {
        security.add_listener(Listener {
            addr,
            tls: tls.is_some(),
        });
        if scan_every_min > 0 {
            security.spawn_schedule(Duration::from_secs(scan_every_min * 60), shutdown.clone());
        }
    }
    // Tests and scripts wait for this line on stdout.
    println!("listening on {scheme}://{addr}");
    http::serve(
        platform.controller.clone(),
        platform.security.clone(),
        http::Domains {
            trading: Some(platform.trading.clone()),
            workflows: Some(platform.workflows.clone()),
            ops: Some(platform.ops.clone()),
            mesh: Some(mesh),
        },
        listener,
        tls,
        edge,
        token,
        ui_dir,
        shutdown,
    )
    .await?;
    Ok(())
}

/// The token `serve` requires: the one in `--api-token-file`, else
/// `OSHAL_API_TOKEN`, else the one in the data directory, else a new one
/// written there readable by the owner only.
fn load_or_create_token(dir: &Path, file: Option<&Path>) -> Result<(ApiToken, String)> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--api-token-file {}", file.display()))?;
        let token = ApiToken::new(text.trim())
            .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message))?;
        return Ok((token, file.display().to_string()));
    }
    if let Ok(t) = std::env::var("OSHAL_API_TOKEN") {
        let token = ApiToken::new(t).map_err(|e| anyhow::anyhow!(e.message))?;
        return Ok((token, "OSHAL_API_TOKEN".to_owned()));
    }
    let path = dir.join(TOKEN_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let token = ApiToken::new(existing.trim())
            .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))?;
        return Ok((token, path.display().to_string()));
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
    Ok((token, path.display().to_string()))
}
