//! What the runner reads of tickets and gives them: a task's payload as
//! submitted (marked in a dry run), a ticket's answer as a unit's output,
//! the events a ticket's end gives its unit,
//! whether a ticket has ended, which tickets a run moved on from, the
//! tasks to submit again after a restart, and events made to fit the
//! journal.

use oshal_workflow::history::{Event, Failure};
use oshal_workflow::run::{MAX_OUTPUT_BYTES, Run};
use serde_json::Value;

use crate::store::TicketEnd;
use crate::ticket::TicketState;

/// A task's payload as a dry run submits it: a `tool` call, a media
/// `publish` and a build `deploy`, marked so that their writes are refused
/// before they happen.
pub(super) fn dry(kind: &str, mut payload: Value, dry_run: bool) -> Value {
    let writes = match kind {
        "tool" => true,
        "media" => payload.get("op").and_then(Value::as_str) == Some("publish"),
        "build" => payload.get("op").and_then(Value::as_str) == Some("deploy"),
        _ => false,
    };
    if dry_run
        && writes
        && let Some(p) = payload.as_object_mut()
    {
        p.insert("dry_run".into(), Value::Bool(true));
    }
    payload
}

/// What a succeeded ticket gives its unit as output: a `media` or `build`
/// step's answer (its artifact, its probe), which is JSON; else the
/// ticket's result (`{"text", "model", "usage", …}`).
pub(super) fn output_of(end: &TicketEnd) -> Value {
    let result = end.result.clone().unwrap_or(Value::Null);
    if matches!(end.kind.as_str(), "media" | "build")
        && let Some(answer) = result
            .get("text")
            .and_then(Value::as_str)
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
    {
        return answer;
    }
    result
}

/// The events a ticket's end gives its unit (its start first, which names
/// the ticket; the run drops it if it has it); none while it runs. The
/// ticket stays known to the runner until its end is recorded.
pub(super) fn outcome(end: &TicketEnd, unit: String, attempt: u32) -> Vec<Event> {
    if !ended(end.state, end.attempts, end.max_attempts) {
        return Vec::new();
    }
    let at = end.updated_at_ms;
    let cost_nusd = end.cost_nusd;
    let start = Event::NodeStarted {
        unit: unit.clone(),
        attempt,
        ticket: end.id.to_string(),
        at: end.started_at_ms.unwrap_or(at),
    };
    let failure = match end.state {
        TicketState::Succeeded => {
            let output = output_of(end);
            let size = output.to_string().len();
            if size <= MAX_OUTPUT_BYTES {
                let end = Event::NodeSucceeded {
                    unit,
                    attempt,
                    output_hash: oshal_workflow::hash::of(&output),
                    output,
                    cost_nusd,
                    at,
                };
                return vec![start, end];
            }
            Failure::new(
                "output_too_large",
                format!(
                    "the output is {size} bytes; a run keeps at most {MAX_OUTPUT_BYTES} per unit (the ticket {} holds it whole)",
                    end.id
                ),
            )
        }
        state => Failure::new(
            match state {
                TicketState::Dead => "dead",
                TicketState::Cancelled => "cancelled",
                _ => "failed",
            },
            end.error
                .clone()
                .unwrap_or_else(|| format!("the ticket ended {state:?}")),
        ),
    };
    let end = Event::NodeFailed {
        unit,
        attempt,
        failure,
        cost_nusd,
        at,
    };
    vec![start, end]
}

/// Whether the run moved on from `attempt` of `unit` without its ticket's
/// answer (a timeout, a stop, a newer unit in its group): the ticket, if
/// it still runs, is to be cancelled.
pub(super) fn left_behind(run: &Run, unit: &str, attempt: u32) -> bool {
    !run.in_flight(unit, attempt)
        && run.unit(unit).is_some_and(|u| {
            u.attempt == attempt
                && u.failure.as_ref().is_some_and(|f| {
                    f.error_type == "superseded"
                        || f.error_type == "cancelled"
                        || f.error_type.starts_with("timeout.")
                })
        })
}

/// Whether a ticket has ended for good: a failure ends it once it has
/// no attempt left.
pub(super) fn ended(state: TicketState, attempts: u32, max_attempts: u32) -> bool {
    state.is_terminal() || (state == TicketState::Failed && attempts >= max_attempts)
}

/// The `node_scheduled` of units in flight, to submit again after a restart.
pub(super) fn flying_tasks(run: &Run) -> Vec<Event> {
    run.nodes
        .iter()
        .flat_map(|n| &n.units)
        .filter(|u| u.in_flight() && u.key.is_some())
        .filter_map(|u| {
            let (i, _) = run.find(&u.name)?;
            run.workflow.spec.nodes[i].task.as_ref()?;
            Some(Event::NodeScheduled {
                unit: u.name.clone(),
                attempt: u.attempt,
                input_hash: u.input_hash.clone().unwrap_or_default(),
                task: u.task.clone()?,
                key: u.key.clone()?,
                at: u.scheduled_at.unwrap_or_default(),
            })
        })
        .collect()
}

/// An event whose body the journal would refuse becomes the unit's error,
/// so the history always takes what the run decided.
pub(super) fn fit_history(e: Event) -> Event {
    let size = serde_json::to_string(&e).map_or(usize::MAX, |s| s.len());
    if size <= crate::store::journal::MAX_BODY {
        return e;
    }
    match e {
        Event::NodeScheduled { unit, at, .. } => Event::NodeErrored {
            unit,
            message: format!(
                "the resolved task is {size} bytes; a run's history keeps at most {} per event",
                crate::store::journal::MAX_BODY
            ),
            at,
        },
        Event::NodeExpanded { node, items, at } => Event::NodeErrored {
            unit: node,
            message: format!(
                "its {} items take {size} bytes; a run's history keeps at most {} per event",
                items.len(),
                crate::store::journal::MAX_BODY
            ),
            at,
        },
        other => other,
    }
}
