//! The per-agent auth gate: may this bot call this operation, now?
//!
//! Deny by default. A call is allowed only if the connector is enabled, a
//! live grant covering the call — the bot's own, or one bound to the
//! call's ticket, held by whichever bot runs it — names the operation, has
//! not expired and holds every scope the operation requires, the grant's
//! conditions hold for these parameters, its rate (calls per rolling
//! minute) has room and its budget (calls in all) is not spent. A grant
//! bound to a ticket never covers another ticket's call. A write to a
//! built-in connector (the platform's own state) is allowed only by a grant
//! bound to the call's ticket, one an approval mints: without one the
//! decision says approval is required, whatever the bot holds. Evaluation
//! that fails for any reason — a condition on a missing or non-numeric
//! parameter, an unreadable grant, a store error — denies, and says so.
//! Every decision, either way, is written to the audit trail before the
//! caller hears it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::manifest::{Effect, Manifest};
use super::store::{AuditEntry, AuditKind, ConnectorDb, Grant};
use crate::clock::{SharedClock, UnixMs};

pub use super::call::CallRef;

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub allowed: bool,
    /// The grant that allowed it (or the one that came closest).
    pub grant: Option<String>,
    pub reason: String,
    /// Denied because the parameters do not fit the operation's schema:
    /// (field, why), for a typed refusal. Checked before any rate slot or
    /// budget is taken, so a malformed call spends nothing.
    pub invalid_params: Option<(String, String)>,
    /// Denied because a write to a built-in connector needs a grant bound
    /// to the call's ticket (minted when a heal is approved), and none
    /// allowed it.
    pub approval_required: bool,
}

impl Decision {
    /// A grant covers this bot, operation and scopes: the call was allowed,
    /// or refused only for its parameters.
    pub fn granted(&self) -> bool {
        self.allowed || self.invalid_params.is_some()
    }

    fn deny(reason: impl Into<String>) -> Self {
        Self {
            allowed: false,
            grant: None,
            reason: reason.into(),
            invalid_params: None,
            approval_required: false,
        }
    }
}

/// Why a policy could not be evaluated (which denies).
#[derive(Debug, thiserror::Error)]
enum EvalError {
    #[error("condition on {param:?}: {reason}")]
    Condition { param: String, reason: String },
    #[error("{0}")]
    Store(String),
}

#[derive(Debug)]
pub struct Gate {
    db: ConnectorDb,
    clock: SharedClock,
    /// Allowed calls in the last minute, per grant.
    recent: Mutex<HashMap<String, VecDeque<UnixMs>>>,
}

impl Gate {
    pub fn new(db: ConnectorDb, clock: SharedClock) -> Self {
        Self {
            db,
            clock,
            recent: Mutex::default(),
        }
    }

    /// Decides, audits, and answers. `manifest` is `None` when the connector
    /// is unknown or not enabled; `built_in` says it is served in process
    /// (its writes need a grant bound to the ticket).
    pub async fn check(
        &self,
        call: &CallRef,
        manifest: Option<&Manifest>,
        built_in: bool,
        params: &serde_json::Value,
    ) -> Decision {
        let decision = match self.evaluate(call, manifest, built_in, params).await {
            Ok(d) => d,
            Err(e) => Decision::deny(format!("policy could not be evaluated, so denied: {e}")),
        };
        let mut entry = AuditEntry::for_call(
            AuditKind::Decision,
            call,
            Some(decision.allowed),
            decision.reason.clone(),
            self.clock.now_ms(),
        );
        entry.grant_id = decision.grant.clone();
        if let Err(e) = self.db.audit(&entry).await {
            // No audit, no call.
            return Decision::deny(format!("the decision could not be audited, so denied: {e}"));
        }
        decision
    }

    async fn evaluate(
        &self,
        call: &CallRef,
        manifest: Option<&Manifest>,
        built_in: bool,
        params: &serde_json::Value,
    ) -> Result<Decision, EvalError> {
        let Some(manifest) = manifest else {
            return Ok(Decision::deny(format!(
                "connector {:?} is unknown or not enabled",
                call.connector
            )));
        };
        let Some(op) = manifest.operation(&call.operation) else {
            return Ok(Decision::deny(format!(
                "connector {:?} has no operation {:?}",
                call.connector, call.operation
            )));
        };
        let grants = self
            .db
            .grants_for_call(call.bot.as_str(), call.ticket, &call.connector)
            .await
            .map_err(|e| EvalError::Store(e.to_string()))?;
        // The platform's own state changes only by an approved heal: a
        // grant bound to this ticket, whatever the bot holds besides.
        let needs_approval = built_in && op.effect == Effect::Write;
        let now = self.clock.now_ms();
        // Told only to a bot granted the operation (others learn nothing of
        // its schema), and before a rate slot or budget is taken.
        let invalid = op.check_params(params).err().map(|e| (e.field, e.reason));
        let mut closest: Option<Decision> = None;
        let candidates = grants.iter().filter(|g| {
            g.applies_to(call)
                && g.operations.contains(&op.id)
                && (!needs_approval || g.ticket == Some(call.ticket))
        });
        for grant in candidates {
            let missing: Vec<&str> = op
                .scopes
                .iter()
                .filter(|s| !grant.scopes.contains(s))
                .map(String::as_str)
                .collect();
            let verdict = if let Some(at) = grant.expires_at_ms.filter(|_| grant.expired(now)) {
                Decision::deny(format!("grant {} expired at {at}; refused", grant.id))
            } else if !missing.is_empty() {
                Decision::deny(format!("grant lacks scope {}", missing.join(", ")))
            } else if let Some((field, reason)) = &invalid {
                Decision {
                    invalid_params: Some((field.clone(), reason.clone())),
                    ..Decision::deny(format!("{field}: {reason}"))
                }
            } else if let Some(breach) = breached(grant, params)? {
                Decision::deny(breach)
            } else if let Err(limited) = self.reserve(grant) {
                Decision::deny(limited)
            } else if !self
                .spend(grant)
                .await
                .inspect_err(|_| self.release(grant))?
            {
                self.release(grant);
                Decision::deny(format!(
                    "budget spent: {} of {} calls",
                    grant.budget_calls, grant.budget_calls
                ))
            } else {
                return Ok(Decision {
                    allowed: true,
                    grant: Some(grant.id.clone()),
                    reason: format!("grant allows {}.{}", call.connector, op.id),
                    invalid_params: None,
                    approval_required: false,
                });
            };
            closest.get_or_insert(Decision {
                grant: Some(grant.id.clone()),
                ..verdict
            });
        }
        let decision = closest.unwrap_or_else(|| match needs_approval {
            true => Decision::deny(format!(
                "no grant bound to ticket {} lets it write",
                call.ticket
            )),
            false => Decision::deny(format!(
                "no grant lets {} call {}.{} (denied by default)",
                call.bot, call.connector, op.id
            )),
        });
        if needs_approval && decision.invalid_params.is_none() {
            return Ok(Decision {
                approval_required: true,
                reason: format!(
                    "{}.{} writes to the platform, and a write needs an approved heal (a grant bound to the ticket, minted on approval): {}",
                    call.connector, op.id, decision.reason
                ),
                ..decision
            });
        }
        Ok(decision)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<UnixMs>>> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot of the grant's rate (calls in the rolling minute), or
    /// says why there is none. Checking and taking are one step, so
    /// concurrent calls cannot both take the last slot.
    fn reserve(&self, grant: &Grant) -> Result<(), String> {
        let now = self.clock.now_ms();
        let mut recent = self.lock();
        let window = recent.entry(grant.id.clone()).or_default();
        while window.front().is_some_and(|&t| t <= now - 60_000) {
            window.pop_front();
        }
        if window.len() >= grant.rate_per_minute as usize {
            return Err(format!(
                "rate limit: {} calls in the last minute (limit {})",
                window.len(),
                grant.rate_per_minute
            ));
        }
        window.push_back(now);
        Ok(())
    }

    /// Gives back a slot taken by [`Self::reserve`] for a call that was then denied.
    fn release(&self, grant: &Grant) {
        if let Some(window) = self.lock().get_mut(&grant.id) {
            window.pop_back();
        }
    }

    async fn spend(&self, grant: &Grant) -> Result<bool, EvalError> {
        self.db
            .spend(&grant.id)
            .await
            .map_err(|e| EvalError::Store(e.to_string()))
    }
}

/// The first condition these parameters break, if any; an error if one
/// cannot be evaluated.
fn breached(grant: &Grant, params: &serde_json::Value) -> Result<Option<String>, EvalError> {
    for c in &grant.conditions {
        let value = params.get(&c.param).ok_or_else(|| EvalError::Condition {
            param: c.param.clone(),
            reason: "the parameter is missing".into(),
        })?;
        let n = value.as_f64().ok_or_else(|| EvalError::Condition {
            param: c.param.clone(),
            reason: format!("{value} is not a number"),
        })?;
        if !n.is_finite() || n > c.max {
            return Ok(Some(format!(
                "{} = {n} exceeds the grant's limit of {}",
                c.param, c.max
            )));
        }
    }
    Ok(None)
}
