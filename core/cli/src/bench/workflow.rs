//! `oshal workflow bench`: a fan-out and fan-in of trivial tasks in local
//! mode, end to end, measured.
//!
//! Each run opens a fresh local platform (durable SQLite, built-in-model
//! bots), starts a workflow `start → fan (N items) → join` and waits for
//! it to end. Every node is a durable ticket and every step of the run a
//! durable event of its history. Reported: nodes per second from the
//! start of the run to its end, how long after `start` finished the first
//! child of the fan-out started, and what the store holds (every ticket
//! succeeded, one per node).

use std::time::{Duration, Instant};

use oshal_core::controller::ControllerConfig;
use oshal_core::mode::{LocalOptions, Platform};
use oshal_core::store::TicketQuery;
use oshal_core::workflow::{NewRun, RunView};
use oshal_workflow::history::RunState;
use serde_json::{Value, json};

use super::{BenchError, Scratch, setup};

#[derive(Debug, Clone)]
pub struct WorkflowBenchConfig {
    /// Children of the fan-out.
    pub nodes: usize,
    pub bots: usize,
    pub dir: std::path::PathBuf,
}

/// One run's figures.
#[derive(Debug, Clone)]
pub struct WorkflowBenchRun {
    pub nodes: usize,
    pub elapsed: Duration,
    pub nodes_per_s: f64,
    /// From `start` finished to the first child started.
    pub first_child_ms: f64,
    /// From the start of the run to the last child handed out.
    pub handed_out_ms: i64,
    /// From the start of the run to the last child's ticket ended (the
    /// rest, to `elapsed`, is recording the ends and the join).
    pub children_done_ms: i64,
    pub tickets: usize,
    pub succeeded: usize,
    pub history_events: u32,
}

impl WorkflowBenchRun {
    pub fn line(&self) -> String {
        format!(
            "workflow_bench nodes={} elapsed_ms={:.0} nodes_per_s={:.0} first_child_ms={:.1} handed_out_ms={} children_done_ms={} tickets={} succeeded={} history_events={}",
            self.nodes,
            self.elapsed.as_secs_f64() * 1e3,
            self.nodes_per_s,
            self.first_child_ms,
            self.handed_out_ms,
            self.children_done_ms,
            self.tickets,
            self.succeeded,
            self.history_events,
        )
    }
}

const SPEC: &str = r#"
api_version: oshal.dev/workflow/v1
name: bench-fan
inputs:
  items: {}
defaults:
  timeouts: { start_to_close: 10m }
nodes:
  - name: start
    task: { kind: chat, payload: { prompt: "start", max_tokens: 1 } }
  - name: fan
    dependencies: [start]
    with_items: "${{ inputs.items }}"
    task: { kind: chat, payload: { prompt: "item ${{ item }}", max_tokens: 1 } }
  - name: join
    dependencies: [fan]
    task: { kind: chat, payload: { prompt: "join", max_tokens: 1 } }
"#;

/// One measured run on a fresh platform.
pub async fn run_once(cfg: &WorkflowBenchConfig) -> Result<WorkflowBenchRun, BenchError> {
    let scratch = Scratch::new(&cfg.dir, "workflow")?;
    let platform = Platform::local(LocalOptions {
        data_dir: scratch.0.clone(),
        bots: cfg.bots,
        controller: ControllerConfig {
            max_live_tickets: (cfg.nodes * 2).max(1_000),
            ..ControllerConfig::default()
        },
        connectors: None,
        security: None,
        ..LocalOptions::embedded(scratch.0.clone())
    })
    .await
    .map_err(setup)?;
    let items: Vec<Value> = (0..cfg.nodes).map(|i| json!(i)).collect();
    let mut inputs = serde_json::Map::new();
    inputs.insert("items".into(), Value::Array(items));
    let began = Instant::now();
    let started = platform
        .workflows
        .start_run(
            NewRun {
                spec: Value::String(SPEC.into()),
                inputs,
                tenant: None,
                definition: None,
                version: None,
                dry_run: false,
            },
            "bench",
        )
        .await
        .map_err(setup)?;
    let id = started.summary.id.clone();
    let limit = Duration::from_secs(600);
    loop {
        let state = platform.workflows.state(&id, None).map_err(setup)?;
        if state != RunState::Running {
            break;
        }
        if began.elapsed() > limit {
            return Err(BenchError::Stalled(cfg.nodes, limit));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = began.elapsed();
    let done: RunView = platform.workflows.view(&id, None).map_err(setup)?;
    if done.summary.state != RunState::Succeeded {
        return Err(BenchError::Setup(format!(
            "the run ended {:?}",
            done.summary.state
        )));
    }
    let start_done = done.nodes[0].units[0].finished_at_ms.unwrap_or_default();
    let first_child = done.nodes[1]
        .units
        .iter()
        .filter_map(|u| u.started_at_ms)
        .min()
        .unwrap_or_default();
    // Where the time went: when the last child was handed out and when
    // the last child's ticket ended, from the start of the run.
    let t0 = done.summary.started_at_ms;
    let last = |at: fn(&oshal_core::workflow::UnitView) -> Option<i64>| {
        done.nodes[1]
            .units
            .iter()
            .filter_map(at)
            .max()
            .unwrap_or(t0)
            - t0
    };
    let handed_out_ms = last(|u| u.scheduled_at_ms);
    let children_done_ms = last(|u| u.finished_at_ms);
    let mut tickets = 0;
    let mut succeeded = 0;
    let mut cursor = None;
    loop {
        let page = platform
            .store
            .tickets(&TicketQuery {
                limit: 1_000,
                cursor,
                ..TicketQuery::default()
            })
            .await
            .map_err(setup)?;
        tickets += page.tickets.len();
        succeeded += page
            .tickets
            .iter()
            .filter(|t| t.state == oshal_core::ticket::TicketState::Succeeded)
            .count();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    platform.shutdown().await;
    let nodes = cfg.nodes + 2;
    Ok(WorkflowBenchRun {
        nodes,
        elapsed,
        nodes_per_s: nodes as f64 / elapsed.as_secs_f64(),
        first_child_ms: (first_child - start_done) as f64,
        handed_out_ms,
        children_done_ms,
        tickets,
        succeeded,
        history_events: done.events,
    })
}
