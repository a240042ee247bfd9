//! The heals' writes: the built-in `oshal-ops` connector's write
//! operations (`oshal_ops::heal::Action`), applied from the controller in
//! process. The gate lets a call through only under the one grant bound
//! to an approved heal's ticket; here the call must also be exactly the
//! action that approval named, from the operator's (`default` tenant's)
//! ticket. Each write is idempotent (a retry after a lost answer answers
//! as before and records nothing twice) and recorded as a change event.

use std::sync::Arc;

use oshal_ops::change::{ChangeEvent, ChangeKind};
use oshal_ops::heal::{Action, HealPhase};
use oshal_ops::monitor::Input;
use serde_json::{Value, json};

use super::{Inner, Operations};
use crate::connector::call::CallRef;
use crate::ticket::TenantId;

/// Applies a heal's write, or answers why not.
pub(super) async fn apply(
    inner: Arc<Inner>,
    call: &CallRef,
    params: &Value,
    key: &str,
) -> Result<(u16, Value), String> {
    if call.tenant != Some(TenantId::default_tenant()) {
        return Ok((
            403,
            json!({"error": "a heal writes the platform's own state; only the operator's (default tenant's) tickets write it"}),
        ));
    }
    let action = match Action::from_call(&call.operation, params) {
        Ok(a) => a,
        Err(e) => return Ok((400, json!({"error": e}))),
    };
    // The very action its approval named, nothing else: a node relays
    // the call, and a grant names an operation, not its parameters.
    let approved = {
        let book = inner.book(&TenantId::default_tenant());
        let book = book.lock().await;
        book.monitor
            .heal_of(&call.ticket.to_string())
            .filter(|(_, h)| h.decided_by.is_some() && h.phase != HealPhase::Denied)
            .map(|(_, h)| h.action.clone())
    };
    if approved.as_ref() != Some(&action) {
        return Ok((
            403,
            json!({"error": format!("ticket {} holds no approved heal of this write: a heal writes only what its approval named", call.ticket)}),
        ));
    }
    let written = match action {
        Action::SetBudget {
            tenant,
            budget_nusd,
        } => match known(&inner, &tenant).await? {
            Ok(t) => set_budget(&inner, t, budget_nusd, Way::Raise, call, key).await?,
            Err(refused) => Err(refused),
        },
        Action::CapBudget {
            tenant,
            from_nusd,
            budget_nusd,
        } => match known(&inner, &tenant).await? {
            Ok(t) => set_budget(&inner, t, budget_nusd, Way::Cap(from_nusd), call, key).await?,
            Err(refused) => Err(refused),
        },
        Action::ReplayDead { tenant, tickets } => match known(&inner, &tenant).await? {
            Ok(t) => replay_dead(&inner, t, &tickets, call, key).await?,
            Err(refused) => Err(refused),
        },
        Action::RevokeGrants { connector, grants } => {
            revoke_grants(&inner, &connector, &grants, call, key).await?
        }
        Action::RetireNode { node } => retire_node(&inner, &node, call, key).await?,
        Action::DrainBot { bot } => drain_bot(&inner, &bot, call, key).await?,
        Action::DrainNode { node } => drain_node(&inner, &node, call, key).await?,
        Action::PauseTenant { tenant } => match known(&inner, &tenant).await? {
            Ok(t) => pause_tenant(&inner, t, call, key).await?,
            Err(refused) => Err(refused),
        },
        Action::RotateCredential { connector, finding } => {
            let before =
                written_before(&inner, ChangeKind::CredentialRotated, &connector, key).await;
            super::heal::rotate::write(&inner, &connector, &finding, call, key, before).await?
        }
        Action::RestartNode { node, run } => {
            let before = written_before(&inner, ChangeKind::NodeRestarted, &node, key).await;
            super::heal::restart::write(&inner, (&node, &run), call, key, before).await?
        }
    };
    let (answer, change) = match written {
        Ok(done) => done,
        Err(refused) => return Ok(refused),
    };
    if let Some(change) = change {
        let ops = Operations { inner };
        ops.observe(&TenantId::default_tenant(), vec![Input::Change(change)])
            .await;
    }
    Ok((200, answer))
}

/// A node's refusal (whether no such node is known, and why) as a write's
/// answer: 404 for an unknown node, 409 otherwise.
pub(super) fn refused(refusal: Option<(bool, String)>) -> (u16, Value) {
    let (unknown, why) = refusal.unwrap_or_default();
    (if unknown { 404 } else { 409 }, json!({"error": why}))
}

/// The tenant a write names, if it exists (a refusal as an answer if not).
async fn known(inner: &Inner, named: &str) -> Result<Result<TenantId, (u16, Value)>, String> {
    match inner.controller.known_tenant(Some(named)).await {
        Ok(t) => Ok(Ok(t)),
        Err(crate::controller::ControllerError::UnknownTenant(_)) => {
            Ok(Err((404, json!({"error": format!("no tenant {named:?}")}))))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Revokes the named grants on `connector` that still stand; one gone
/// already (revoked by hand, expired, or by this write before its answer
/// was lost) is let be, and a grant on another connector refuses the
/// whole write.
async fn revoke_grants(
    inner: &Inner,
    connector: &str,
    grants: &[String],
    call: &CallRef,
    key: &str,
) -> Written {
    let Some(connectors) = inner.controller.connectors() else {
        return Err("this platform runs without a connector runtime".into());
    };
    let live = connectors.grants(None).await.map_err(|e| e.to_string())?;
    for (i, id) in grants.iter().enumerate() {
        if let Some(g) = live.iter().find(|g| g.id == *id)
            && g.connector != connector
        {
            return Ok(Err((
                409,
                json!({"error": format!("params.grants[{i}]: grant {id} is on {}, not {connector}", g.connector)}),
            )));
        }
    }
    let mut revoked = Vec::new();
    for id in grants {
        if live.iter().any(|g| g.id == *id) {
            match connectors
                .revoke_grant(id, &format!("heal ticket {}", call.ticket))
                .await
            {
                Ok(()) => revoked.push(id.clone()),
                // Gone meanwhile (expired, revoked by hand): let be.
                Err(crate::connector::ConnectorError::NotFound(_)) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    let answer = json!({"connector": connector, "revoked": revoked});
    let change = (!revoked.is_empty()).then(|| ChangeEvent {
        kind: ChangeKind::GrantsRevoked,
        subject: connector.to_owned(),
        detail: format!(
            "{} grants on {connector} revoked by heal ticket {} (write {key}): its calls are denied until granted again",
            revoked.len(),
            call.ticket
        ),
        count: u32::try_from(revoked.len()).unwrap_or(u32::MAX),
        at_ms: 0,
    });
    Ok(Ok((answer, change)))
}

/// Retires a lost node; one retired already answers as before, and one
/// with a live bot refuses (a node that answers is not lost).
async fn retire_node(inner: &Inner, node: &str, call: &CallRef, key: &str) -> Written {
    use crate::controller::Retired;
    let retired = inner
        .controller
        .retire_node(node)
        .await
        .map_err(|e| e.to_string())?;
    match retired {
        Retired::Live(bots) => Ok(Err((
            409,
            json!({"error": format!("node {node} has live bots ({}): it is not lost", bots.iter().map(|b| b.as_str()).collect::<Vec<_>>().join(", "))}),
        ))),
        Retired::Already => Ok(Ok((json!({"node": node, "retired": []}), None))),
        Retired::Unknown => Ok(Err((
            404,
            json!({"error": format!("no bot of node {node} is known to this controller (a restart forgets lost bots): nothing to retire")}),
        ))),
        Retired::Forgot(bots) => {
            let change = ChangeEvent {
                kind: ChangeKind::NodeRetired,
                subject: node.to_owned(),
                detail: format!(
                    "node {node} retired by heal ticket {} (write {key}): {} bots forgotten",
                    call.ticket,
                    bots.len()
                ),
                count: u32::try_from(bots.len()).unwrap_or(u32::MAX),
                at_ms: 0,
            };
            Ok(Ok((json!({"node": node, "retired": bots}), Some(change))))
        }
    }
}

/// Drains a live bot; one drained already answers as before. One not
/// live (a lost node's bots are retired, not drained), unknown, or the
/// last live bot of a skill refuses, changing nothing.
async fn drain_bot(inner: &Inner, bot: &str, call: &CallRef, key: &str) -> Written {
    use crate::controller::Drained;
    let id = match crate::ticket::BotId::parse(bot) {
        Ok(id) => id,
        Err(e) => return Ok(Err((400, json!({"error": format!("params.bot: {e}")})))),
    };
    let drained = inner
        .controller
        .drain_bot(&id)
        .await
        .map_err(|e| e.to_string())?;
    if let Some((unknown, why)) = drained.refusal(bot) {
        return Ok(Err((
            if unknown { 404 } else { 409 },
            json!({"error": why}),
        )));
    }
    match drained {
        Drained::Drained { requeued, held } => {
            let change = ChangeEvent {
                kind: ChangeKind::BotDrained,
                subject: bot.to_owned(),
                detail: format!(
                    "bot {bot} drained by heal ticket {} (write {key}): {} tickets waiting in its lane went back to the queue; {held} it holds finish on it",
                    call.ticket,
                    requeued.len()
                ),
                count: u32::try_from(requeued.len()).unwrap_or(u32::MAX),
                at_ms: 0,
            };
            Ok(Ok((
                json!({"bot": bot, "requeued": requeued, "held": held}),
                Some(change),
            )))
        }
        Drained::Already { held } => Ok(Ok((
            json!({"bot": bot, "requeued": [], "held": held}),
            None,
        ))),
        _ => Ok(Ok((json!({"bot": bot, "requeued": []}), None))),
    }
}

/// Drains every live bot of a node together; one drained already, or by
/// this write before (a person may have uncordoned it since), answers as
/// before. One with no live bot, unknown, or whose bots are the last of
/// a skill refuses, changing nothing.
async fn drain_node(inner: &Inner, node: &str, call: &CallRef, key: &str) -> Written {
    use crate::controller::NodeDrained;
    if let Err(e) = crate::ticket::check_name("node", node) {
        return Ok(Err((400, json!({"error": format!("params.{e}")}))));
    }
    if written_before(inner, ChangeKind::NodeDrained, node, key).await {
        return Ok(Ok((
            json!({"node": node, "bots": [], "requeued": 0, "held": 0}),
            None,
        )));
    }
    let drained = inner
        .controller
        .drain_node(node)
        .await
        .map_err(|e| e.to_string())?;
    let (requeued, held) = (drained.requeued(), drained.held());
    let NodeDrained::Drained { bots, fresh } = drained else {
        return Ok(Err(refused(drained.refusal(node))));
    };
    let names: Vec<String> = bots.iter().map(|(b, _)| b.to_string()).collect();
    let answer = json!({"node": node, "bots": names, "requeued": requeued, "held": held});
    // Recorded once per write, even when an earlier try of it drained
    // the node and lost its answer (then nothing is fresh now).
    let change = ChangeEvent {
        kind: ChangeKind::NodeDrained,
        subject: node.to_owned(),
        detail: format!(
            "node {node} drained by heal ticket {} (write {key}): its bots {} are routed nothing more{}; {requeued} tickets waiting in their lanes went back to the queue; {held} they hold finish on them",
            call.ticket,
            names.join(", "),
            if fresh { "" } else { " (drained already)" }
        ),
        count: u32::try_from(requeued).unwrap_or(u32::MAX),
        at_ms: 0,
    };
    Ok(Ok((answer, Some(change))))
}

/// Pauses a tenant; one paused already, or by this write before (a person
/// may have resumed it since), answers as before.
async fn pause_tenant(inner: &Inner, known: TenantId, call: &CallRef, key: &str) -> Written {
    let answer = json!({"tenant": known, "paused": true});
    if written_before(inner, ChangeKind::TenantPaused, known.as_str(), key).await {
        return Ok(Ok((answer, None)));
    }
    let why = format!("heal ticket {} (write {key})", call.ticket);
    let done = match inner.controller.pause_tenant(&known, true, &why).await {
        Ok(done) => done,
        Err(crate::controller::ControllerError::Invalid(e)) => {
            return Ok(Err((409, json!({"error": e.to_string()}))));
        }
        Err(e) => return Err(e.to_string()),
    };
    if !done.changed {
        return Ok(Ok((answer, None)));
    }
    let (kept, finishing) = pause_counts(inner, &known)
        .await
        .map_err(|e| e.to_string())?;
    let change = ChangeEvent {
        kind: ChangeKind::TenantPaused,
        subject: known.to_string(),
        detail: format!(
            "tenant {known} paused by {why}: {kept} of its tickets are kept, not routed, until a person resumes it; {finishing} routed or running finish"
        ),
        count: kept,
        at_ms: 0,
    };
    Ok(Ok((answer, Some(change))))
}

/// A tenant's tickets a pause keeps (queued, backing off, awaiting an
/// approval) and those it lets finish (routed, running).
pub(super) async fn pause_counts(
    inner: &Inner,
    tenant: &TenantId,
) -> Result<(u32, u32), crate::controller::ControllerError> {
    use crate::ticket::TicketState as S;
    let (mut kept, mut finishing) = (0, 0);
    for (state, n) in inner.controller.state_counts_of(Some(tenant)).await? {
        match state {
            S::Queued | S::Failed | S::AwaitingApproval => kept += n as u32,
            S::Routed | S::Running => finishing += n as u32,
            _ => {}
        }
    }
    Ok((kept, finishing))
}

/// Whether a heal's cap changed `tenant`'s budget last.
async fn capped(inner: &Inner, tenant: &TenantId) -> bool {
    let book = inner.book(&TenantId::default_tenant());
    let book = book.lock().await;
    book.monitor.capped().contains(tenant.as_str())
}

/// Whether the change event of a write under `key` to `subject` (a
/// tenant, a node) is on the
/// record already: a retry after its answer was lost must not apply it
/// again over what a person did since.
async fn written_before(inner: &Inner, kind: ChangeKind, subject: &str, key: &str) -> bool {
    let mark = format!("(write {key})");
    inner
        .changes_since(&TenantId::default_tenant(), 0)
        .await
        .iter()
        .any(|c| c.kind == kind && c.subject == subject && c.detail.contains(&mark))
}

/// What a heal's write did (its answer, and the change event to record,
/// none when it had been applied already), or its refusal as an answer.
pub(super) type Written = Result<Result<(Value, Option<ChangeEvent>), (u16, Value)>, String>;

/// Which way a budget heal moves a budget.
#[derive(Clone, Copy, PartialEq)]
enum Way {
    Raise,
    /// Down, from the budget the cap was worked out against.
    Cap(i64),
}

/// Raises a tenant's budget and never lowers it (nor raises one a heal
/// capped), or caps the budget it was worked out against and no other (a
/// heal approved after someone set it by hand would undo what they
/// did).
async fn set_budget(
    inner: &Inner,
    known: TenantId,
    budget_nusd: i64,
    way: Way,
    call: &CallRef,
    key: &str,
) -> Written {
    let spend = inner.controller.spend().await.map_err(|e| e.to_string())?;
    let now = spend
        .iter()
        .find(|s| s.tenant == known)
        .and_then(|s| s.budget_nusd);
    let answer = json!({"tenant": known, "budget_nusd": budget_nusd});
    let kind = match way {
        Way::Raise => ChangeKind::BudgetChanged,
        Way::Cap(_) => ChangeKind::BudgetCapped,
    };
    if now == Some(budget_nusd) || written_before(inner, kind, known.as_str(), key).await {
        // Applied already under this key (its answer was lost; a person
        // may have set the budget since): the same answer again, no
        // second change event, and what the person set stands.
        return Ok(Ok((answer, None)));
    }
    let was = now.map_or_else(
        || "no limit".to_owned(),
        |b| format!("${:.6}", crate::cost::usd(b)),
    );
    let refusal = match way {
        Way::Raise if now.is_none_or(|b| b > budget_nusd) => Some(format!(
            "tenant {known}'s budget is {was} already; the heal would not raise it"
        )),
        Way::Raise if capped(inner, &known).await => Some(format!(
            "tenant {known}'s budget was capped by a heal; a person sets it again before a heal raises it"
        )),
        Way::Cap(from) if now != Some(from) => Some(format!(
            "tenant {known}'s budget is {was}, not the ${:.6} the cap was worked out against: someone set it since, and that stands",
            crate::cost::usd(from)
        )),
        _ => None,
    };
    if let Some(why) = refusal {
        return Ok(Err((409, json!({"error": why}))));
    }
    inner
        .controller
        .set_budget(known.clone(), Some(budget_nusd))
        .await
        .map_err(|e| e.to_string())?;
    let done = if way == Way::Raise { "set" } else { "capped" };
    let change = ChangeEvent {
        kind,
        subject: known.to_string(),
        detail: format!(
            "budget {done} to ${:.6} by heal ticket {} (write {key})",
            crate::cost::usd(budget_nusd),
            call.ticket
        ),
        count: 0,
        at_ms: 0,
    };
    Ok(Ok((answer, Some(change))))
}

/// The idempotency key of a dead ticket's replay: one replay per dead
/// ticket, whoever asks and however often.
pub(super) fn replay_key(dead: &str) -> String {
    format!("ops-replay:{dead}")
}

/// Why a dead ticket may not run again, if it may not: the operations
/// loop's own tickets and earlier replays (a replay is run once), and any
/// ticket with a write the outside system may have taken (its effect not
/// refused): a new ticket is a new write, which would be sent again.
pub(super) async fn not_replayable(
    inner: &Inner,
    t: &crate::store::TicketView,
) -> Result<Option<String>, String> {
    if t.idempotency_key
        .as_deref()
        .is_some_and(|k| k.starts_with("ops-"))
    {
        return Ok(Some(format!(
            "ticket {} is the operations loop's own, or a replay already",
            t.id
        )));
    }
    let Some(connectors) = inner.controller.connectors() else {
        return Ok(None);
    };
    let effects = connectors
        .effects(Some(t.id), Some(&t.tenant), 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok(effects
        .iter()
        .find(|e| e.state != crate::connector::store::EffectState::Failed)
        .map(|e| {
            format!(
                "ticket {} wrote {}.{} ({:?}): the outside system may have taken it, and a replay would send it again",
                t.id, e.connector, e.operation, e.state
            )
        }))
}

/// Submits each dead ticket again as a new ticket of the same tenant,
/// kind, skill, priority, payload and approval, caused by the dead one,
/// under a key that makes a second replay answer the first. A ticket that
/// is not the tenant's, not dead, or not replayable refuses the whole
/// write (nothing is submitted); one the controller refuses at admission
/// (a budget, its capacity) is answered as refused beside the others.
async fn replay_dead(
    inner: &Inner,
    known: TenantId,
    tickets: &[String],
    call: &CallRef,
    key: &str,
) -> Written {
    let mut ids = Vec::with_capacity(tickets.len());
    for (i, t) in tickets.iter().enumerate() {
        match crate::ticket::TicketId::parse(t) {
            Ok(id) => ids.push(id),
            Err(e) => {
                return Ok(Err((
                    400,
                    json!({"error": format!("params.tickets[{i}]: {e}")}),
                )));
            }
        }
    }
    let found = inner
        .controller
        .tickets_by_id(&ids, Some(&known))
        .await
        .map_err(|e| e.to_string())?;
    let mut again = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let Some(t) = found.iter().find(|t| t.id == *id) else {
            return Ok(Err((
                404,
                json!({"error": format!("params.tickets[{i}]: tenant {known} has no ticket {id}")}),
            )));
        };
        if t.state != crate::ticket::TicketState::Dead {
            return Ok(Err((
                409,
                json!({"error": format!("params.tickets[{i}]: ticket {id} is {}, not dead", t.state)}),
            )));
        }
        if let Some(why) = not_replayable(inner, t).await? {
            return Ok(Err((
                409,
                json!({"error": format!("params.tickets[{i}]: {why}")}),
            )));
        }
        let approved = t
            .events
            .iter()
            .any(|e| e.to == crate::ticket::TicketState::AwaitingApproval);
        again.push(crate::ticket::NewTicket {
            kind: t.kind.clone(),
            payload: t.payload.clone(),
            tenant: Some(known.to_string()),
            idempotency_key: Some(replay_key(&id.to_string())),
            priority: Some(t.priority),
            skill: Some(t.skill.to_string()),
            max_attempts: Some(t.max_attempts),
            parent_id: None,
            correlation_id: Some(t.correlation_id.to_string()),
            causation_id: Some(id.to_string()),
            // What a person had to approve, a person approves again.
            requires_approval: approved,
            // Replayed by the controller itself: no gate on its way.
            gate_at_ms: None,
        });
    }
    let mut replays = Vec::with_capacity(again.len());
    let (mut fresh, mut refused) = (0, 0);
    for (dead, r) in ids.iter().zip(inner.controller.submit_many(again).await) {
        match r {
            Ok(s) => {
                fresh += u32::from(!s.duplicate);
                replays.push(json!({"dead": dead, "replay": s.id}));
            }
            Err(e) => {
                refused += 1;
                replays.push(json!({"dead": dead, "refused": e.to_string()}));
            }
        }
    }
    if refused == ids.len() {
        return Ok(Err((
            409,
            json!({"error": "every replay was refused", "replays": replays}),
        )));
    }
    let answer = json!({"tenant": known, "replays": replays});
    let change = (fresh > 0).then(|| ChangeEvent {
        kind: ChangeKind::TicketsReplayed,
        subject: known.to_string(),
        detail: format!(
            "{fresh} dead tickets of tenant {known} run again by heal ticket {} (write {key}){}",
            call.ticket,
            match refused {
                0 => String::new(),
                n => format!("; {n} refused at admission"),
            }
        ),
        count: fresh,
        at_ms: 0,
    });
    Ok(Ok((answer, change)))
}
