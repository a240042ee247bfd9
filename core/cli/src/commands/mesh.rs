//! `oshal mesh`: the remote nodes of a running controller's mesh, through
//! the API: their status (Headscale's and this host's `tailscaled`'s views
//! merged, disagreements flagged), the Headscale API key stored, a node
//! enrolled (a single-use key and the commands that join it), a policy
//! change checked or written.

use anyhow::{Context, Result};
use clap::Subcommand;
use oshal_core::api::client::Client;
use oshal_core::api::routes as r;
use oshal_core::mesh::{MeshKey, MeshView, PolicyChange};
use oshal_mesh::enrol::Enrolment;
use oshal_mesh::health::{MeshNode, NodeStatus};
use oshal_mesh::tailscale::Path;
use std::path::PathBuf;

use crate::args::{ActionArgs, api_error, json, print};

pub type Args = ActionArgs<Action>;

#[derive(Subcommand)]
pub enum Action {
    /// Every node: status, path, last handshake, round trip, bots, and
    /// where the control server and this host disagree.
    Status {
        /// The whole view as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Store the Headscale API key (read from FILE; never a flag) in the
    /// controller's secret backend.
    Key { file: PathBuf },
    /// Mint a single-use, tagged, expiring key for a new node; print the
    /// commands that join it (the key is shown this once).
    Enrol {
        /// The node's host name (its `oshal node --name` too).
        name: String,
        /// A tag for its key (repeat); `tag:oshal-node` when none.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// How long the key may be used, in seconds.
        #[arg(long)]
        expires_in_s: Option<u32>,
    },
    /// A tailnet policy (HuJSON in FILE): `check` it against the live
    /// nodes, or `set` it (one that cuts a node off needs --confirm).
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
}

#[derive(Subcommand)]
pub enum PolicyAction {
    Check {
        file: PathBuf,
    },
    Set {
        file: PathBuf,
        #[arg(long)]
        confirm: bool,
    },
}

fn read(file: &PathBuf) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

impl Action {
    async fn call(self, client: &Client) -> Result<serde_json::Value> {
        match self {
            Self::Status { json: true } => json(client.request::<r::GetMesh>((), None, None).await),
            Self::Status { json: false } => {
                let view = client
                    .request::<r::GetMesh>((), None, None)
                    .await
                    .map_err(api_error)?;
                print_table(&view);
                Ok(serde_json::Value::Null)
            }
            Self::Key { file } => {
                let key = MeshKey {
                    api_key: read(&file)?.trim().to_owned(),
                };
                json(
                    client
                        .request::<r::StoreMeshKey>((), None, Some(&key))
                        .await,
                )
            }
            Self::Enrol {
                name,
                tags,
                expires_in_s,
            } => {
                let e = Enrolment {
                    name,
                    tags,
                    expires_in_s,
                };
                json(client.request::<r::EnrolNode>((), None, Some(&e)).await)
            }
            Self::Policy { action } => {
                let (file, confirm, write) = match action {
                    PolicyAction::Check { file } => (file, false, false),
                    PolicyAction::Set { file, confirm } => (file, confirm, true),
                };
                let change = PolicyChange {
                    policy: read(&file)?,
                    confirm,
                };
                if write {
                    json(
                        client
                            .request::<r::SetMeshPolicy>((), None, Some(&change))
                            .await,
                    )
                } else {
                    json(
                        client
                            .request::<r::CheckMeshPolicy>((), None, Some(&change))
                            .await,
                    )
                }
            }
        }
    }
}

fn path(n: &MeshNode) -> String {
    match n.local.as_ref().map(|l| (&l.path, l.is_self)) {
        Some((_, true)) => "this host".into(),
        Some((Path::Direct { endpoint }, _)) => format!("direct {endpoint}"),
        Some((Path::PeerRelay { endpoint }, _)) => format!("peer-relay {endpoint}"),
        Some((Path::Relayed { region }, _)) => format!("relay {region}"),
        Some((Path::Idle, _)) => "idle".into(),
        None => "—".into(),
    }
}

/// `text` after `lead`, or nothing when there is none.
fn after(lead: &str, text: &Option<String>) -> String {
    text.as_ref()
        .map(|t| format!("{lead}{t}"))
        .unwrap_or_default()
}

fn print_table(view: &MeshView) {
    match &view.edge {
        Some(e) => match &e.tls {
            Some(c) => println!(
                "edge https://{} certificate {} ({}) {}{}",
                e.listen,
                c.subject,
                c.names.join(", "),
                match (c.not_after_ms - view.read_ms).div_euclid(86_400_000) {
                    left @ 0.. => format!("expires in {left} d"),
                    left => format!("expired {} d ago", -left),
                },
                after("; renewal refused: ", &e.reload_refused)
            ),
            None => println!("edge http://{} (plain)", e.listen),
        },
        None => println!("edge: none (no HTTP listener)"),
    }
    if let Some(s) = &view.secrets {
        println!(
            "secrets {} {}{}{}{}",
            s.backend,
            serde_json::to_value(s.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            after(" at ", &s.at),
            after(" ", &s.version),
            after(": ", &s.message)
        );
    }
    if !view.configured {
        println!(
            "no mesh source is configured (oshal serve --headscale-url, --tailscale-socket, --mesh-static or --containers-socket)"
        );
        return;
    }
    for s in &view.sources {
        println!(
            "{:?} {} {:?}{}{}",
            s.kind,
            s.at,
            s.state,
            after(" ", &s.version),
            after(": ", &s.message)
        );
    }
    println!(
        "{:<20} {:<8} {:<28} {:>10} {:>9} {:>5}  disagreements",
        "node", "status", "path", "handshake", "rtt ms", "bots"
    );
    for n in &view.nodes {
        let status = match n.status {
            NodeStatus::Online => "online",
            NodeStatus::Offline => "offline",
            NodeStatus::Expired => "expired",
            NodeStatus::Unknown => "unknown",
        };
        let handshake = n
            .local
            .as_ref()
            .and_then(|l| l.last_handshake_ms)
            .map(|t| format!("{} s ago", (view.read_ms - t).max(0) / 1000))
            .unwrap_or_else(|| "—".into());
        let rtt = n
            .latency_ms
            .map(|l| format!("{l:.2}"))
            .unwrap_or_else(|| "—".into());
        let bots = n.bots.map(|b| b.to_string()).unwrap_or_else(|| "—".into());
        let said: Vec<String> = n.disagreements.iter().map(|d| format!("{d:?}")).collect();
        println!(
            "{:<20} {:<8} {:<28} {:>10} {:>9} {:>5}  {}",
            n.name,
            status,
            path(n),
            handshake,
            rtt,
            bots,
            said.join("; ")
        );
    }
    for k in &view.keys {
        println!("key {:?} {:?} tags {:?}", k.id, k.state, k.acl_tags);
    }
    for r in &view.refused {
        println!("refused {r}");
    }
    if let Some(r) = &view.policy_refused {
        println!("policy not read: {r}");
    }
}

pub async fn run(args: Args) -> Result<()> {
    print(&args.action.call(&args.api.client()?).await?)
}
