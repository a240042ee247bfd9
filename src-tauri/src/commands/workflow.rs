//! Workflows: the shipped shapes, runs started, read, decided, retried
//! from a node and stopped, on the embedded controller or, through the
//! API, on the attached fleet's.

use oshal_core::api::routes as r;
use oshal_core::workflow::{
    Decision, DefinitionDiff, DefinitionQuery, DefinitionView, GenerateRequest, Generated,
    HistoryEntry, NewDefinition, NewRun, PendingApproval, RetryRequest, RunSummary, RunView, Shape,
    SpecSource, StopRequest, UpgradeRequest, UpgradeView, Validation,
};
use tauri::State;

use super::CommandResult;
use crate::desktop::{Desktop, Target};

/// Who acts from the window on the embedded controller: its operator.
const OPERATOR: &str = "desktop operator";
/// The approver the window's operator answers as.
const AS_APPROVER: &str = "operator";

/// The shapes Oshal ships, each checked against this controller.
#[tauri::command]
#[specta::specta]
pub async fn workflow_shapes(desktop: State<'_, Desktop>) -> CommandResult<Vec<Shape>> {
    match desktop.target() {
        Target::Local(_) => Ok(oshal_core::workflow::shapes()),
        Target::Fleet(f) => Ok(f.client.request::<r::ListShapes>((), None, None).await?),
    }
}

/// Checks a spec: its hash and DAG, or each refusal at its path.
#[tauri::command]
#[specta::specta]
pub async fn workflow_validate(
    desktop: State<'_, Desktop>,
    source: SpecSource,
) -> CommandResult<Validation> {
    match desktop.target() {
        Target::Local(_) => Ok(oshal_core::workflow::validate(&source)),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::ValidateWorkflow>((), None, Some(&source))
            .await?),
    }
}

/// Starts a run, pinned to its spec's hash.
#[tauri::command]
#[specta::specta]
pub async fn workflow_start(desktop: State<'_, Desktop>, run: NewRun) -> CommandResult<RunView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.workflows().start_run(run, OPERATOR).await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::StartRun>((), None, Some(&run))
            .await?),
    }
}

/// Runs, newest first.
#[tauri::command]
#[specta::specta]
pub async fn workflow_runs(desktop: State<'_, Desktop>) -> CommandResult<Vec<RunSummary>> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.workflows().list(None)),
        Target::Fleet(f) => Ok(f.client.request::<r::ListRuns>((), None, None).await?),
    }
}

/// One run: its nodes, their phases and progress, the critical path.
#[tauri::command]
#[specta::specta]
pub async fn workflow_run(desktop: State<'_, Desktop>, id: String) -> CommandResult<RunView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.workflows().view(&id, None)?),
        Target::Fleet(f) => Ok(f.client.request::<r::GetRun>(r::Id(id), None, None).await?),
    }
}

/// A run's history: the events it is rebuilt from.
#[tauri::command]
#[specta::specta]
pub async fn workflow_history(
    desktop: State<'_, Desktop>,
    id: String,
) -> CommandResult<Vec<HistoryEntry>> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.workflows().history(&id, None).await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::GetRunHistory>(r::Id(id), None, None)
            .await?),
    }
}

/// Approvals waiting for a decision, soonest deadline first.
#[tauri::command]
#[specta::specta]
pub async fn workflow_approvals(
    desktop: State<'_, Desktop>,
) -> CommandResult<Vec<PendingApproval>> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.workflows().approvals(None)),
        Target::Fleet(f) => Ok(f.client.request::<r::ListApprovals>((), None, None).await?),
    }
}

/// Approves or denies an approval node, as the operator.
#[tauri::command]
#[specta::specta]
pub async fn workflow_decide(
    desktop: State<'_, Desktop>,
    id: String,
    decision: Decision,
) -> CommandResult<RunView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .workflows()
            .decide(&id, None, decision, AS_APPROVER, OPERATOR)
            .await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::DecideApproval>(r::Id(id), None, Some(&decision))
            .await?),
    }
}

/// Runs a failed node again, and what is downstream of it.
#[tauri::command]
#[specta::specta]
pub async fn workflow_retry(
    desktop: State<'_, Desktop>,
    id: String,
    request: RetryRequest,
) -> CommandResult<RunView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .workflows()
            .retry(&id, None, request, OPERATOR)
            .await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::RetryRun>(r::Id(id), None, Some(&request))
            .await?),
    }
}

/// Cancels or terminates a run.
#[tauri::command]
#[specta::specta]
pub async fn workflow_stop(
    desktop: State<'_, Desktop>,
    id: String,
    request: StopRequest,
) -> CommandResult<RunView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .workflows()
            .stop(&id, None, request, OPERATOR)
            .await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::StopRun>(r::Id(id), None, Some(&request))
            .await?),
    }
}

/// Asks a bot's model for a spec and previews it; publishes nothing.
#[tauri::command]
#[specta::specta]
pub async fn workflow_generate(
    desktop: State<'_, Desktop>,
    request: GenerateRequest,
) -> CommandResult<Generated> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.workflows().generate(request).await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::GenerateWorkflow>((), None, Some(&request))
            .await?),
    }
}

/// Compares a spec with the latest published version of its name.
#[tauri::command]
#[specta::specta]
pub async fn workflow_compare(
    desktop: State<'_, Desktop>,
    definition: NewDefinition,
) -> CommandResult<DefinitionDiff> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.workflows().compare(&definition).await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::CompareDefinition>((), None, Some(&definition))
            .await?),
    }
}

/// Publishes a spec as the next version of its name: the person's act.
#[tauri::command]
#[specta::specta]
pub async fn workflow_publish(
    desktop: State<'_, Desktop>,
    definition: NewDefinition,
) -> CommandResult<DefinitionView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.workflows().publish(definition, OPERATOR).await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::PublishDefinition>((), None, Some(&definition))
            .await?),
    }
}

/// The latest version of each published definition.
#[tauri::command]
#[specta::specta]
pub async fn workflow_definitions(
    desktop: State<'_, Desktop>,
) -> CommandResult<Vec<DefinitionView>> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop.workflows().definitions(None)),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::ListDefinitions>((), None, None)
            .await?),
    }
}

/// Every version of one definition, newest first.
#[tauri::command]
#[specta::specta]
pub async fn workflow_definition(
    desktop: State<'_, Desktop>,
    name: String,
    tenant: Option<String>,
) -> CommandResult<Vec<DefinitionView>> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .workflows()
            .definition(&name, tenant.as_deref())
            .await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::GetDefinition>(r::Id(name), Some(&DefinitionQuery { tenant }), None)
            .await?),
    }
}

/// Shows (or, confirmed, makes) a run's move to a published version.
#[tauri::command]
#[specta::specta]
pub async fn workflow_upgrade(
    desktop: State<'_, Desktop>,
    id: String,
    request: UpgradeRequest,
) -> CommandResult<UpgradeView> {
    match desktop.target() {
        Target::Local(_) => Ok(desktop
            .workflows()
            .upgrade(&id, None, request, OPERATOR)
            .await?),
        Target::Fleet(f) => Ok(f
            .client
            .request::<r::UpgradeRun>(r::Id(id), None, Some(&request))
            .await?),
    }
}
