//! `oshal workflow`: workflow runs on a running controller, through the
//! API. `validate` checks a spec file (JSON or YAML) and prints its hash
//! and DAG, or every refusal at its JSON path; `run` starts a run of it
//! (`--input name=value`, the value read as JSON when it parses, else as a
//! string); `runs`, `show`, `history` and `approvals` read; `approve`,
//! `deny`, `retry` and `stop` act.

use anyhow::{Context, Result};
use clap::Subcommand;
use oshal_core::api::client::Client;
use oshal_core::api::routes as r;
use oshal_core::workflow::{
    Decision, DefinitionQuery, GenerateRequest, NewDefinition, NewRun, RetryRequest, SpecSource,
    StopRequest, UpgradeRequest,
};
use serde_json::Value;

use crate::args::{ActionArgs, json, print};

pub type Args = ActionArgs<Action>;

#[derive(Subcommand)]
pub enum Action {
    /// Check a spec file without running it.
    Validate { file: std::path::PathBuf },
    /// Start a run of a spec file, or of a published definition.
    Run {
        /// The spec; leave it out with `--definition`.
        #[arg(required_unless_present = "definition", conflicts_with = "definition")]
        file: Option<std::path::PathBuf>,
        /// A published definition's name.
        #[arg(long)]
        definition: Option<String>,
        /// Its version; the latest if absent.
        #[arg(long, requires = "definition")]
        version: Option<u32>,
        /// Refuse every write its tasks would make (a tool's write, a
        /// media publish) and answer what would have been written.
        #[arg(long)]
        dry_run: bool,
        /// An input, `name=value` (the value as JSON if it parses); repeat.
        #[arg(long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// The shapes Oshal ships (video, support ticket): each one's inputs,
    /// nodes and spec, to run as they are or to start from.
    Shapes,
    /// Publish a spec file as the next version of its name (shows its diff).
    Publish {
        file: std::path::PathBuf,
        #[arg(long, default_value = "")]
        note: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Compare a spec file with the latest published version of its name.
    Compare {
        file: std::path::PathBuf,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Ask a bot's model to write a spec for REQUEST (or to change
    /// `--based-on`'s latest version) and show the preview: its checks and
    /// its diff. Publishes nothing: `publish` is yours to run.
    Generate {
        request: String,
        #[arg(long)]
        based_on: Option<String>,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// The latest version of each published definition.
    Definitions,
    /// Every version of one definition, newest first, with its diff.
    Definition {
        name: String,
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Every run this token may see, newest first.
    Runs,
    /// One run: its nodes, their phases, attempts, tickets and cost.
    Show { id: String },
    /// A run's history: the events it is rebuilt from.
    History { id: String },
    /// Approvals waiting for a decision.
    Approvals,
    /// Approve an approval node; `--input` is the JSON its schema asks for.
    Approve {
        id: String,
        node: String,
        #[arg(long, default_value = "{}")]
        input: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Deny an approval node: it fails.
    Deny {
        id: String,
        node: String,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Run a failed node again, and everything downstream of it.
    Retry { id: String, node: String },
    /// Show the diff of moving a run to a published version of its
    /// workflow (the latest unless `--version`); `--confirm` moves it.
    Upgrade {
        id: String,
        #[arg(long)]
        version: Option<u32>,
        #[arg(long)]
        confirm: bool,
    },
    /// Measure a fan-out and fan-in of trivial tasks in local mode, in
    /// process (no server): nodes per second end to end, every node a
    /// durable ticket, and how soon the first child starts after its
    /// parent; each run alternates with a baseline of as many plain
    /// tickets through the same spine (`oshal bench`), and the ratio.
    Bench {
        /// Children of the fan-out.
        #[arg(long, default_value_t = 10_000)]
        nodes: usize,
        #[arg(long, default_value_t = 16)]
        bots: usize,
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Cancel a run (what runs is cancelled first), or `--terminate` it at once.
    Stop {
        id: String,
        #[arg(long)]
        terminate: bool,
        #[arg(long, default_value = "")]
        reason: String,
    },
}

/// A spec file's text, as the API takes it.
fn spec_of(file: &std::path::Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Ok(Value::String(text))
}

fn inputs_of(pairs: &[String]) -> Result<serde_json::Map<String, Value>> {
    let mut out = serde_json::Map::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .with_context(|| format!("--input {pair:?}: write name=value"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
        out.insert(name.to_owned(), value);
    }
    Ok(out)
}

impl Action {
    async fn call(self, client: &Client) -> Result<Value> {
        let id = |id: String| r::Id(id);
        match self {
            Self::Validate { file } => {
                let source = SpecSource {
                    spec: spec_of(&file)?,
                };
                json(
                    client
                        .request::<r::ValidateWorkflow>((), None, Some(&source))
                        .await,
                )
            }
            Self::Run {
                file,
                definition,
                version,
                dry_run,
                inputs,
                tenant,
            } => {
                let new = NewRun {
                    spec: match &file {
                        Some(f) => spec_of(f)?,
                        None => Value::Null,
                    },
                    inputs: inputs_of(&inputs)?,
                    tenant,
                    definition,
                    version,
                    dry_run,
                };
                json(client.request::<r::StartRun>((), None, Some(&new)).await)
            }
            Self::Shapes => json(client.request::<r::ListShapes>((), None, None).await),
            Self::Publish { file, note, tenant } => {
                let new = NewDefinition {
                    spec: spec_of(&file)?,
                    note,
                    tenant,
                };
                json(
                    client
                        .request::<r::PublishDefinition>((), None, Some(&new))
                        .await,
                )
            }
            Self::Compare { file, tenant } => {
                let new = NewDefinition {
                    spec: spec_of(&file)?,
                    note: String::new(),
                    tenant,
                };
                json(
                    client
                        .request::<r::CompareDefinition>((), None, Some(&new))
                        .await,
                )
            }
            Self::Generate {
                request,
                based_on,
                tenant,
            } => {
                let req = GenerateRequest {
                    request,
                    based_on,
                    tenant,
                };
                json(
                    client
                        .request::<r::GenerateWorkflow>((), None, Some(&req))
                        .await,
                )
            }
            Self::Definitions => json(client.request::<r::ListDefinitions>((), None, None).await),
            Self::Definition { name, tenant } => {
                let q = DefinitionQuery { tenant };
                json(
                    client
                        .request::<r::GetDefinition>(id(name), Some(&q), None)
                        .await,
                )
            }
            Self::Runs => json(client.request::<r::ListRuns>((), None, None).await),
            Self::Show { id: run } => json(client.request::<r::GetRun>(id(run), None, None).await),
            Self::History { id: run } => json(
                client
                    .request::<r::GetRunHistory>(id(run), None, None)
                    .await,
            ),
            Self::Approvals => json(client.request::<r::ListApprovals>((), None, None).await),
            Self::Approve {
                id: run,
                node,
                input,
                comment,
            } => {
                let input = serde_json::from_str(&input).context("--input must be JSON")?;
                let d = Decision {
                    node,
                    approved: true,
                    input,
                    comment,
                };
                json(
                    client
                        .request::<r::DecideApproval>(id(run), None, Some(&d))
                        .await,
                )
            }
            Self::Deny {
                id: run,
                node,
                comment,
            } => {
                let d = Decision {
                    node,
                    approved: false,
                    input: Value::Null,
                    comment,
                };
                json(
                    client
                        .request::<r::DecideApproval>(id(run), None, Some(&d))
                        .await,
                )
            }
            Self::Retry { id: run, node } => {
                let request = RetryRequest { node };
                json(
                    client
                        .request::<r::RetryRun>(id(run), None, Some(&request))
                        .await,
                )
            }
            Self::Upgrade {
                id: run,
                version,
                confirm,
            } => {
                let request = UpgradeRequest { version, confirm };
                json(
                    client
                        .request::<r::UpgradeRun>(id(run), None, Some(&request))
                        .await,
                )
            }
            Self::Bench { .. } => unreachable!("the bench runs in process"),
            Self::Stop {
                id: run,
                terminate,
                reason,
            } => {
                let how = if terminate { "terminate" } else { "cancel" };
                let request = StopRequest {
                    how: oshal_core::workflow::parse_stop(how).expect("a known stop"),
                    reason,
                };
                json(
                    client
                        .request::<r::StopRun>(id(run), None, Some(&request))
                        .await,
                )
            }
        }
    }
}

pub async fn run(args: Args) -> Result<()> {
    if let Action::Bench { nodes, bots, runs } = args.action {
        return bench(nodes, bots, runs).await;
    }
    print(&args.action.call(&args.api.client()?).await?)
}

/// Runs the bench `runs` times, a line each, then the medians.
async fn bench(nodes: usize, bots: usize, runs: usize) -> Result<()> {
    use crate::bench::workflow::{WorkflowBenchConfig, run_once};
    let cfg = WorkflowBenchConfig {
        nodes,
        bots,
        dir: std::env::temp_dir(),
    };
    let mut rates = Vec::new();
    let mut firsts = Vec::new();
    let mut spine = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..runs.max(1) {
        let r = run_once(&cfg).await?;
        println!("{}", r.line());
        // The baseline, alternating with the workflow: as many plain chat
        // tickets through the same spine (`oshal bench`), no workflow.
        let b = crate::bench::run_local(crate::bench::BenchConfig {
            tickets: r.nodes,
            bots,
            window: r.nodes,
            dir: std::env::temp_dir(),
            ..crate::bench::BenchConfig::default()
        })
        .await?;
        println!("spine_baseline {}", b.line());
        spine.push(b.tickets_per_s);
        ratios.push(r.nodes_per_s / b.tickets_per_s);
        anyhow::ensure!(
            r.tickets == r.nodes && r.succeeded == r.nodes,
            "the store holds {} tickets, {} succeeded, for {} nodes",
            r.tickets,
            r.succeeded,
            r.nodes
        );
        rates.push(r.nodes_per_s);
        firsts.push(r.first_child_ms);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "workflow_bench_median nodes={} runs={} nodes_per_s={:.0} first_child_ms={:.1} spine_tickets_per_s={:.0} ratio={:.2}",
        nodes + 2,
        rates.len(),
        median(&mut rates),
        median(&mut firsts),
        median(&mut spine),
        median(&mut ratios)
    );
    Ok(())
}
