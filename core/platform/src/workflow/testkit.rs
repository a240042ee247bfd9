//! What the workflow tests share: a local controller with its workflows
//! on a store in a directory, and a wait for a run to come to a state.

use std::sync::Arc;
use std::time::Duration;

use super::{RunView, Workflows};
use crate::clock::SystemClock;
use crate::controller::{Controller, ControllerConfig, LocalPool};
use crate::store::sqlite::SqliteStore;

/// A local controller over `pool` and its workflows, on a store in `dir`
/// (a second call on the same `dir` is a restart).
pub(super) async fn open(
    dir: &std::path::Path,
    pool: LocalPool,
) -> (Arc<SqliteStore>, Controller, Workflows) {
    let store = Arc::new(SqliteStore::open(dir).await.unwrap());
    let controller = Controller::start(
        ControllerConfig::default(),
        store.clone(),
        pool,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let workflows = Workflows::start(controller.clone()).await.unwrap();
    (store, controller, workflows)
}

pub(super) async fn close(controller: Controller, workflows: Workflows) {
    workflows.shutdown();
    controller.shutdown().await;
}

/// The run once `done` holds (within a minute), or a panic naming `what`.
pub(super) async fn until(
    workflows: &Workflows,
    id: &str,
    what: &str,
    done: impl Fn(&RunView) -> bool,
) -> RunView {
    for _ in 0..2400 {
        let v = workflows.view(id, None).unwrap();
        if done(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "run {id} never came to {what}: {:#?}",
        workflows.view(id, None).unwrap()
    );
}
