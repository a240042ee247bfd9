//! A heal rule's template filled in from the platform's figures: the
//! concrete action and its dry run (what it would change, from what to
//! what, and its blast radius), one function per action.

use oshal_ops::diagnose::CauseKind;
use oshal_ops::heal::{self, Action, BlastRadius, DryRun, MAX_BLAST_TICKETS};
use oshal_ops::rule::HealRule;
use serde_json::json;

use super::super::{Operations, OpsError, conn};
use crate::controller::BotView;
use crate::cost::usd;
use crate::store::TicketQuery;
use crate::ticket::{TenantId, TicketId, TicketState};

/// What a heal is planned from: the diagnosis' top cause, the tenant the
/// incident's first alert names, and where its window starts.
pub(super) struct Planned {
    pub(super) cause: CauseKind,
    pub(super) subject: String,
    pub(super) tenant: Option<String>,
    /// The Security Center finding the incident's first alert names.
    pub(super) finding: Option<String>,
    pub(super) since_ms: i64,
}

impl Planned {
    /// The tenant the incident's first alert names, for a rule that acts
    /// on one (`what` it does to it, for the refusal).
    fn tenant_to(&self, rule: &HealRule, what: &str) -> Result<TenantId, OpsError> {
        let named = self.tenant.as_deref().unwrap_or_default();
        TenantId::parse(named).map_err(|e| {
            OpsError::Conflict(format!(
                "heal rule {}: the alert names no tenant to {what}: {e}",
                rule.name
            ))
        })
    }
}

/// What a node's drain takes: the slow bot's node, its live bots (more
/// than one, every one slow: the model server they share) and the bots of
/// other nodes that would take their work (not all slow).
#[derive(Debug)]
struct NodeDrain<'a> {
    node: &'a str,
    bots: Vec<&'a BotView>,
    takers: Vec<&'a BotView>,
}

/// Whether a node's live bots (`mates`) are slow together, more than one
/// of them: the model server they share, which the node's drain heals and
/// one bot's drain would not. `node_drain` holds only then, and
/// `plan_drain` refuses a bot's drain then, so at most one of them does.
fn whole_node_slow(mates: &[&BotView]) -> bool {
    mates.len() > 1 && mates.iter().all(|b| is_slow(b))
}

/// The drain of the node of `subject`, a slow bot, or why it does not
/// hold: a bot of the local pool, a node with one live bot or one not
/// slow (a bot's drain heals that), bots that are the last of a skill,
/// or takers all slow too (a drain would only move the lag).
fn node_drain<'a>(bots: &'a [BotView], subject: &str) -> Result<NodeDrain<'a>, String> {
    let Some(bot) = bots.iter().find(|b| b.id.as_str() == subject) else {
        return Err(format!("no bot {subject} is known"));
    };
    let Some(node) = bot.node.as_deref() else {
        return Err(format!("bot {subject} runs in the local pool, on no node"));
    };
    let mine = node_bots(bots, node);
    let fast: Vec<&str> = mine
        .iter()
        .filter(|b| !is_slow(b))
        .map(|b| b.id.as_str())
        .collect();
    if !whole_node_slow(&mine) {
        return Err(format!(
            "node {node} has {} live bots{}: not the node's, a bot's drain",
            mine.len(),
            if fast.is_empty() {
                String::new()
            } else {
                format!(", of which {} not slow", fast.join(", "))
            }
        ));
    }
    let elsewhere = |b: &&BotView| b.node.as_deref() != Some(node) && b.live && !b.cordoned;
    let mut skills: Vec<&crate::ticket::Skill> = mine.iter().flat_map(|b| &b.skills).collect();
    skills.sort();
    skills.dedup();
    let stranded: Vec<&str> = skills
        .iter()
        .filter(|s| !bots.iter().filter(elsewhere).any(|b| b.skills.contains(s)))
        .map(|s| s.as_str())
        .collect();
    if !stranded.is_empty() {
        return Err(format!(
            "node {node}'s bots are the last live bots with {}: draining them would leave their tickets nowhere to go",
            stranded.join(", ")
        ));
    }
    let takers: Vec<&BotView> = bots
        .iter()
        .filter(elsewhere)
        .filter(|b| skills.iter().any(|s| b.skills.contains(s)))
        .collect();
    if takers.iter().all(|b| is_slow(b)) {
        return Err(format!(
            "every bot that would take node {node}'s work ({}) is slow too: a drain would only move the lag",
            takers
                .iter()
                .map(|b| b.id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(NodeDrain {
        node,
        bots: mine,
        takers,
    })
}

/// The live bots of `node` not drained.
fn node_bots<'a>(bots: &'a [BotView], node: &str) -> Vec<&'a BotView> {
    bots.iter()
        .filter(|b| b.node.as_deref() == Some(node) && b.live && !b.cordoned)
        .collect()
}

/// Whether a bot's recent attempts are slow at the median.
fn is_slow(bot: &BotView) -> bool {
    bot.attempt_ms
        .is_some_and(|ms| ms >= oshal_ops::gather::SLOW_ATTEMPT_MS)
}

/// The tenant a cause names as its subject.
fn tenant_named(rule: &HealRule, subject: &str) -> Result<TenantId, OpsError> {
    TenantId::parse(subject).map_err(|e| {
        OpsError::Conflict(format!(
            "heal rule {}: {subject:?} is no tenant: {e}",
            rule.name
        ))
    })
}

impl Operations {
    /// What a change of `tenant`'s budget touches: the tenant, its
    /// tickets waiting in the queue (the newest named), and all its
    /// unfinished tickets counted.
    async fn budget_blast(&self, tenant: &TenantId) -> Result<BlastRadius, OpsError> {
        let counts = self.inner.controller.state_counts_of(Some(tenant)).await?;
        let tickets = self.named(TicketState::Queued, Some(tenant), None).await?;
        Ok(BlastRadius {
            tenants: vec![tenant.to_string()],
            bots: Vec::new(),
            tickets: tickets.iter().map(|t| t.id.to_string()).collect(),
            tickets_total: counts
                .iter()
                .filter(|(state, _)| !state.is_terminal())
                .map(|(_, n)| *n as u32)
                .sum(),
        })
    }

    /// The newest tickets in `state` of `tenant` or on `bot` a blast
    /// radius names (at most [`MAX_BLAST_TICKETS`]; its total counts all).
    pub(super) async fn named(
        &self,
        state: TicketState,
        tenant: Option<&TenantId>,
        bot: Option<&crate::ticket::BotId>,
    ) -> Result<Vec<crate::store::TicketSummary>, OpsError> {
        let query = TicketQuery {
            tag: None,
            state: Some(state),
            tenant: tenant.cloned(),
            bot: bot.cloned(),
            kind: None,
            cursor: None,
            limit: MAX_BLAST_TICKETS as u32,
        };
        Ok(self.inner.controller.tickets(&query).await?.tickets)
    }

    /// The budget a raise sets for the tenant `subject`, and its dry run.
    pub(super) async fn plan_raise(
        &self,
        rule: &HealRule,
        subject: &str,
        percent: u32,
    ) -> Result<(Action, DryRun), OpsError> {
        let tenant = tenant_named(rule, subject)?;
        let spend = self.inner.controller.spend().await?;
        let Some(s) = spend.iter().find(|s| s.tenant == tenant) else {
            return Err(OpsError::NotFound(format!("tenant {tenant} has no budget")));
        };
        let budget = heal::raised_budget(s.budget_nusd, s.spent_nusd, percent);
        let blast = self.budget_blast(&tenant).await?;
        let was = s
            .budget_nusd
            .map_or_else(|| "no limit".to_owned(), |b| format!("${:.6}", usd(b)));
        let dry_run = DryRun {
            summary: format!(
                "raise tenant {tenant}'s budget from {was} to ${:.6} (it has spent ${:.6}); its new tickets are admitted again",
                usd(budget),
                usd(s.spent_nusd)
            ),
            before: json!({"tenant": tenant, "budget_nusd": s.budget_nusd, "spent_nusd": s.spent_nusd}),
            after: json!({"tenant": tenant, "budget_nusd": budget, "spent_nusd": s.spent_nusd}),
            blast,
        };
        let action = Action::SetBudget {
            tenant: tenant.to_string(),
            budget_nusd: budget,
        };
        Ok((action, dry_run))
    }

    /// The budget a cap lowers the tenant `subject`'s to (what it has
    /// spent, plus what its current rate spends in `minutes`), and its
    /// dry run. Refused when it burns its budget no more, or the cap
    /// would not lower it.
    pub(super) async fn plan_cap(
        &self,
        rule: &HealRule,
        subject: &str,
        minutes: u32,
    ) -> Result<(Action, DryRun), OpsError> {
        let tenant = tenant_named(rule, subject)?;
        let spend = self.inner.controller.spend().await?;
        let Some((s, budget)) = spend
            .iter()
            .find(|s| s.tenant == tenant)
            .and_then(|s| Some((s, s.budget_nusd?)))
        else {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: tenant {tenant} has no budget to cap",
                rule.name
            )));
        };
        let Some(burn) = self
            .inner
            .burning(tenant.as_str(), Some(budget), s.spent_nusd)
        else {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: tenant {tenant} burns its budget past no burn-rate pair now, or its spend is not measured long enough yet since the controller started",
                rule.name
            )));
        };
        let rate = burn.short_rate_nusd_per_h;
        let cap = heal::capped_budget(budget, s.spent_nusd, rate, minutes);
        if cap >= budget {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: tenant {tenant}'s budget of ${:.6} lasts less than {minutes} minutes at ${:.6} an hour already",
                rule.name,
                usd(budget),
                usd(rate)
            )));
        }
        let blast = self.budget_blast(&tenant).await?;
        let x = burn.burn_tenths();
        let lasts = |left: i64| {
            burn.minutes_for(left)
                .map_or_else(|| "?".to_owned(), |m| m.to_string())
        };
        let figures = |budget_nusd: i64| {
            json!({"tenant": tenant, "budget_nusd": budget_nusd, "spent_nusd": s.spent_nusd,
                "rate_nusd_per_h": rate, "lasts_mins": burn.minutes_for(budget_nusd - s.spent_nusd)})
        };
        let dry_run = DryRun {
            summary: format!(
                "lower tenant {tenant}'s budget from ${:.6} to ${:.6}: it has spent ${:.6} and spends ${:.6} an hour ({}.{}x its pace), so its new tickets are refused in about {} minutes instead of {}; a person sets its budget again once the runaway is found",
                usd(budget),
                usd(cap),
                usd(s.spent_nusd),
                usd(rate),
                x / 10,
                x % 10,
                lasts(cap - s.spent_nusd),
                lasts(budget - s.spent_nusd),
            ),
            before: figures(budget),
            after: figures(cap),
            blast,
        };
        let action = Action::CapBudget {
            tenant: tenant.to_string(),
            from_nusd: budget,
            budget_nusd: cap,
        };
        Ok((action, dry_run))
    }

    /// The dead tickets a replay runs again (the newest the tenant's alert
    /// names that died of the cause since shortly before the incident
    /// opened), and its dry run.
    pub(super) async fn plan_replay(
        &self,
        rule: &HealRule,
        p: &Planned,
    ) -> Result<(Action, DryRun), OpsError> {
        let tenant = p.tenant_to(rule, "replay")?;
        let dead =
            super::super::tools::dead_since(&self.inner, Some(tenant.clone()), p.since_ms).await?;
        let caused: Vec<TicketId> = dead
            .iter()
            .filter(|d| heal::replays(d, p.cause, &p.subject))
            .filter_map(|d| TicketId::parse(&d.id).ok())
            .collect();
        let views = self
            .inner
            .controller
            .tickets_by_id(&caused, Some(&tenant))
            .await?;
        let mut all: Vec<&crate::store::TicketView> = Vec::new();
        let mut kept_dead = 0;
        for v in &views {
            match super::super::writes::not_replayable(&self.inner, v)
                .await
                .map_err(OpsError::Conflict)?
            {
                None => all.push(v),
                Some(why) => {
                    kept_dead += 1;
                    tracing::info!(ticket = %v.id, why, "not proposed for a replay");
                }
            }
        }
        // Newest first, as the dead were read.
        all.sort_by_key(|v| std::cmp::Reverse(v.updated_at_ms));
        if all.is_empty() {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: tenant {tenant} has no dead ticket of {} to replay",
                rule.name, p.subject
            )));
        }
        let tickets: Vec<String> = all
            .iter()
            .take(MAX_BLAST_TICKETS)
            .map(|v| v.id.to_string())
            .collect();
        let left = all.len() - tickets.len();
        let cause: &'static str = p.cause.into();
        let dry_run = DryRun {
            summary: format!(
                "run {} dead tickets of tenant {tenant} again, each once as a new ticket ({cause}: {}){}",
                tickets.len(),
                p.subject,
                match (left, kept_dead) {
                    (0, 0) => String::new(),
                    (n, 0) => format!("; {n} older ones stay dead"),
                    (n, k) => format!(
                        "; {n} older ones, and {k} whose write may have reached the outside system (or that are replays or the loop's own), stay dead"
                    ),
                }
            ),
            before: json!({"tenant": tenant, "dead": tickets.len(), "replays": 0}),
            after: json!({"tenant": tenant, "dead": tickets.len(), "replays": tickets.len()}),
            blast: BlastRadius {
                tenants: vec![tenant.to_string()],
                bots: Vec::new(),
                tickets: tickets.clone(),
                tickets_total: tickets.len() as u32,
            },
        };
        let action = Action::ReplayDead {
            tenant: tenant.to_string(),
            tickets,
        };
        Ok((action, dry_run))
    }

    /// The standing grants on connector `subject` a revocation takes (the
    /// loop's own grants bound to a ticket are not among them), and its
    /// dry run.
    pub(super) async fn plan_revoke(
        &self,
        rule: &HealRule,
        subject: &str,
    ) -> Result<(Action, DryRun), OpsError> {
        let Some(connectors) = self.inner.controller.connectors() else {
            return Err(OpsError::Conflict(
                "this platform runs without a connector runtime".into(),
            ));
        };
        let standing: Vec<_> = connectors
            .grants(None)
            .await
            .map_err(conn)?
            .into_iter()
            .filter(|g| g.connector == subject && g.ticket.is_none())
            .collect();
        let beyond = standing.len().saturating_sub(heal::MAX_BLAST_GRANTS);
        let grants: Vec<_> = standing.into_iter().take(heal::MAX_BLAST_GRANTS).collect();
        if grants.is_empty() {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: no standing grant on {subject} to revoke",
                rule.name
            )));
        }
        let mut bots: Vec<String> = grants
            .iter()
            .filter_map(|g| g.bot.as_ref().map(|b| b.to_string()))
            .collect();
        bots.sort();
        bots.dedup();
        let ids: Vec<String> = grants.iter().map(|g| g.id.clone()).collect();
        let dry_run = DryRun {
            summary: format!(
                "revoke {} grants on {subject} (bots {}): every tenant's calls to it through these bots are denied, not sent, until a person grants them again{}",
                ids.len(),
                bots.join(", "),
                match beyond {
                    0 => String::new(),
                    n => format!(
                        "; {n} more grants on it stay (one approval names at most {})",
                        heal::MAX_BLAST_GRANTS
                    ),
                }
            ),
            before: json!({"connector": subject, "grants": ids}),
            after: json!({"connector": subject, "grants": []}),
            blast: BlastRadius::bots(bots),
        };
        let action = Action::RevokeGrants {
            connector: subject.to_owned(),
            grants: ids,
        };
        Ok((action, dry_run))
    }

    /// What a drain of the slow bot `subject` moves (the tickets routed to
    /// it and waiting in its lane) and leaves (what it holds), and its dry
    /// run. Refused for a bot not live, drained already, the last live one
    /// of a skill, one whose work would go only to bots as slow, or one
    /// whose whole node is slow (the node's drain heals that).
    pub(super) async fn plan_drain(
        &self,
        rule: &HealRule,
        subject: &str,
    ) -> Result<(Action, DryRun), OpsError> {
        let bots = self.inner.controller.bots().await;
        let Some(bot) = bots.iter().find(|b| b.id.as_str() == subject) else {
            return Err(OpsError::NotFound(format!("bot {subject}")));
        };
        if !bot.live || bot.cordoned {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: bot {subject} is {}",
                rule.name,
                if bot.live {
                    "drained already"
                } else {
                    "not live"
                }
            )));
        }
        // Its whole node is slow (the model server its bots share): one
        // bot's drain would leave the others lagging; the node's heals it.
        if let Some(node) = &bot.node
            && whole_node_slow(&node_bots(&bots, node))
        {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: every live bot of node {node} is slow, not bot {subject} alone: drain the node (rule action drain_node)",
                rule.name
            )));
        }
        let others = |skill: &crate::ticket::Skill| {
            bots.iter()
                .filter(|b| b.id != bot.id && b.live && !b.cordoned)
                .filter(|b| b.skills.contains(skill))
                .map(|b| b.id.to_string())
                .collect::<Vec<_>>()
        };
        let stranded: Vec<&str> = bot
            .skills
            .iter()
            .filter(|s| others(s).is_empty())
            .map(|s| s.as_str())
            .collect();
        if !stranded.is_empty() {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: bot {subject} is the last live bot with {}: draining it would leave their tickets nowhere to go",
                rule.name,
                stranded.join(", ")
            )));
        }
        let mut takers: Vec<String> = bot.skills.iter().flat_map(others).collect();
        takers.sort();
        takers.dedup();
        // Every bot that would take its work is as slow (a model server
        // they share): a drain would only move the lag, one bot at a time.
        let slow = |id: &String| bots.iter().any(|b| b.id.as_str() == id && is_slow(b));
        if takers.iter().all(slow) {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: every bot that would take bot {subject}'s work ({}) is slow too: a drain would only move the lag (look at the model server they share)",
                rule.name,
                takers.join(", ")
            )));
        }
        let waiting = self.named(TicketState::Routed, None, Some(&bot.id)).await?;
        let mut tenants: Vec<String> = waiting.iter().map(|t| t.tenant.to_string()).collect();
        tenants.sort();
        tenants.dedup();
        let depth = bot.lane.map(|l| l.depth);
        // What stays: every attempt it holds but those waiting in its lane.
        let held = bot.in_flight.saturating_sub(depth.unwrap_or(0));
        let median = bot
            .attempt_ms
            .map_or_else(|| "unknown".to_owned(), |ms| format!("{ms} ms"));
        let dry_run = DryRun {
            summary: format!(
                "drain bot {subject} (its attempts take {median} at the median): it is routed nothing more until a person uncordons it; {} waiting in its lane go back to the queue for {}; the {held} it has taken (started, or read ahead of its current one) finish on it",
                depth.map_or_else(|| "the tickets".to_owned(), |d| format!("{d} tickets")),
                takers.join(", ")
            ),
            before: json!({"bot": subject, "cordoned": false, "lane_depth": depth, "held": held}),
            after: json!({"bot": subject, "cordoned": true, "lane_depth": 0, "held": held}),
            blast: BlastRadius {
                tenants,
                bots: std::iter::once(subject.to_owned()).chain(takers).collect(),
                // Routed to it, not started: those it has not read move.
                tickets: waiting.iter().map(|t| t.id.to_string()).collect(),
                tickets_total: depth.unwrap_or(0).max(waiting.len() as u32),
            },
        };
        Ok((
            Action::DrainBot {
                bot: subject.to_owned(),
            },
            dry_run,
        ))
    }

    /// What a drain of the node of the slow bot `subject` moves (the
    /// tickets routed to its live bots and waiting in their lanes) and
    /// leaves (what they hold), and its dry run. Refused unless the node
    /// has more than one live bot and every one is slow (one slow bot is
    /// a bot's drain), for bots that are the last of a skill, or when
    /// every bot that would take their work is slow too.
    pub(super) async fn plan_drain_node(
        &self,
        rule: &HealRule,
        subject: &str,
    ) -> Result<(Action, DryRun), OpsError> {
        let bots = self.inner.controller.bots().await;
        let NodeDrain {
            node,
            bots: mine,
            takers,
        } = node_drain(&bots, subject)
            .map_err(|why| OpsError::Conflict(format!("heal rule {}: {why}", rule.name)))?;
        let names = |list: &[&BotView]| {
            list.iter()
                .map(|b| b.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut waiting = Vec::new();
        for b in &mine {
            waiting.extend(self.named(TicketState::Routed, None, Some(&b.id)).await?);
        }
        let mut tenants: Vec<String> = waiting.iter().map(|t| t.tenant.to_string()).collect();
        tenants.sort();
        tenants.dedup();
        // A lane that cannot be read counts as what the store says waits.
        let depth: u32 = mine.iter().map(|b| b.lane.map_or(0, |l| l.depth)).sum();
        let held: u32 = mine
            .iter()
            .map(|b| b.in_flight.saturating_sub(b.lane.map_or(0, |l| l.depth)))
            .sum();
        let medians = mine
            .iter()
            .map(|b| format!("{} {} ms", b.id, b.attempt_ms.unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ");
        let total = depth.max(waiting.len() as u32);
        waiting.truncate(MAX_BLAST_TICKETS);
        let dry_run = DryRun {
            summary: format!(
                "drain node {node}, whose every live bot is slow (attempts at the median: {medians}), the model server they share rather than one bot: its bots are routed nothing more until a person uncordons the node; {total} tickets waiting in their lanes go back to the queue for {}; the {held} they have taken finish on them",
                names(&takers)
            ),
            before: json!({"node": node, "bots": names(&mine), "cordoned": false, "lane_depth": depth, "held": held}),
            after: json!({"node": node, "bots": names(&mine), "cordoned": true, "lane_depth": 0, "held": held}),
            blast: BlastRadius {
                tenants,
                bots: mine
                    .iter()
                    .chain(&takers)
                    .map(|b| b.id.to_string())
                    .collect(),
                tickets: waiting.iter().map(|t| t.id.to_string()).collect(),
                tickets_total: total,
            },
        };
        Ok((
            Action::DrainNode {
                node: node.to_owned(),
            },
            dry_run,
        ))
    }

    /// The tenant a pause holds (the one the incident's first alert
    /// names), the tickets it keeps and those it lets finish, and its dry
    /// run. Refused for the default tenant, or one paused already.
    pub(super) async fn plan_pause(
        &self,
        rule: &HealRule,
        p: &Planned,
    ) -> Result<(Action, DryRun), OpsError> {
        let tenant = p.tenant_to(rule, "pause")?;
        if tenant == TenantId::default_tenant() {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: the default tenant runs the platform's own work and is never paused",
                rule.name
            )));
        }
        let spend = self.inner.controller.spend().await?;
        let Some(s) = spend.iter().find(|s| s.tenant == tenant) else {
            return Err(OpsError::NotFound(format!("tenant {tenant}")));
        };
        if s.paused {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: tenant {tenant} is paused already",
                rule.name
            )));
        }
        let (kept, finishing) = super::super::writes::pause_counts(&self.inner, &tenant).await?;
        let queued = self.named(TicketState::Queued, Some(&tenant), None).await?;
        let cause: &'static str = p.cause.into();
        let dry_run = DryRun {
            summary: format!(
                "pause tenant {tenant} ({cause}: {}): its new and waiting tickets ({kept} now) are admitted and kept, not routed, until a person resumes it (oshal tenants resume {tenant}); the {finishing} routed or running finish",
                p.subject
            ),
            before: json!({"tenant": tenant, "paused": false, "kept": 0, "finishing": finishing}),
            after: json!({"tenant": tenant, "paused": true, "kept": kept, "finishing": finishing}),
            blast: BlastRadius {
                tenants: vec![tenant.to_string()],
                bots: Vec::new(),
                tickets: queued.iter().map(|t| t.id.to_string()).collect(),
                tickets_total: kept,
            },
        };
        Ok((
            Action::PauseTenant {
                tenant: tenant.to_string(),
            },
            dry_run,
        ))
    }

    /// The bots a retirement of the lost node `subject` forgets, and its
    /// dry run.
    pub(super) async fn plan_retire(
        &self,
        rule: &HealRule,
        subject: &str,
    ) -> Result<(Action, DryRun), OpsError> {
        let of: Vec<_> = self
            .inner
            .controller
            .bots()
            .await
            .into_iter()
            .filter(|b| b.node.as_deref() == Some(subject))
            .collect();
        if of.is_empty() || of.iter().any(|b| b.live) {
            return Err(OpsError::Conflict(format!(
                "heal rule {}: node {subject} is not lost (no bot of it, or a live one)",
                rule.name
            )));
        }
        let bots: Vec<String> = of.iter().map(|b| b.id.to_string()).collect();
        let dry_run = DryRun {
            summary: format!(
                "retire node {subject}: its {} bots ({}) leave the bots' view and its alert resolves; the work they held was requeued when they were lost, and a bot of it that registers again joins as a new one",
                bots.len(),
                bots.join(", ")
            ),
            before: json!({"node": subject, "bots": bots, "live": 0}),
            after: json!({"node": subject, "bots": [], "live": 0}),
            blast: BlastRadius::bots(bots),
        };
        Ok((
            Action::RetireNode {
                node: subject.to_owned(),
            },
            dry_run,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ticket::{BotId, ModelId, Skill};

    fn bot(id: &str, node: Option<&str>, skill: &str, attempt_ms: Option<u64>) -> BotView {
        BotView {
            id: BotId::parse(id).unwrap(),
            skills: vec![Skill::parse(skill).unwrap()],
            model: ModelId::parse("builtin").unwrap(),
            node: node.map(str::to_owned),
            live: true,
            cordoned: false,
            in_flight: 0,
            succeeded: 0,
            failed: 0,
            attempt_ms,
            lane: None,
        }
    }

    const SLOW: Option<u64> = Some(oshal_ops::gather::SLOW_ATTEMPT_MS);
    const QUICK: Option<u64> = Some(40);

    #[test]
    fn a_node_is_drained_only_when_all_its_bots_are_slow_and_others_take_the_work() {
        let fleet = vec![
            bot("n3-b1", Some("n3"), "chat", SLOW),
            bot("n3-b2", Some("n3"), "chat", SLOW),
            bot("n1-b1", Some("n1"), "chat", QUICK),
            bot("n2-b1", Some("n2"), "code", QUICK),
        ];
        let d = node_drain(&fleet, "n3-b2").unwrap();
        let ids = |l: &[&BotView]| l.iter().map(|b| b.id.to_string()).collect::<Vec<_>>();
        assert_eq!(d.node, "n3");
        assert_eq!(ids(&d.bots), ["n3-b1", "n3-b2"]);
        assert_eq!(
            ids(&d.takers),
            ["n1-b1"],
            "only bots with the node's skills"
        );

        // One of the node's bots is quick: the slow one's own drain.
        let mut mixed = fleet.clone();
        mixed[1].attempt_ms = QUICK;
        let e = node_drain(&mixed, "n3-b1").unwrap_err();
        assert!(e.contains("of which n3-b2 not slow"), "{e}");
        // A node with one live bot (the other drained): a bot's drain.
        let mut one = fleet.clone();
        one[1].cordoned = true;
        let e = node_drain(&one, "n3-b1").unwrap_err();
        assert!(e.contains("node n3 has 1 live bots"), "{e}");
        // Nobody else has chat: the node's bots are the last of it.
        let mut alone = fleet.clone();
        alone[2].live = false;
        let e = node_drain(&alone, "n3-b1").unwrap_err();
        assert!(e.contains("the last live bots with chat"), "{e}");
        // Those that would take the work are slow too.
        let mut all_slow = fleet.clone();
        all_slow[2].attempt_ms = SLOW;
        let e = node_drain(&all_slow, "n3-b1").unwrap_err();
        assert!(e.contains("(n1-b1) is slow too"), "{e}");
        // A bot of the local pool has no node.
        let local = vec![bot("b1", None, "chat", SLOW), bot("b2", None, "chat", SLOW)];
        assert!(node_drain(&local, "b1").unwrap_err().contains("local pool"));
        assert!(
            node_drain(&fleet, "nobody")
                .unwrap_err()
                .contains("no bot nobody")
        );
    }
}
