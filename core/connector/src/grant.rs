//! Grants: what the operator lets a bot do with a connector, and what an
//! approval lets one ticket do (whichever bot runs it, until it expires).
//! Every refusal names its field and limit; every grant and revocation is
//! audited as the operator's action. The gate reads them ([`crate::gate`]);
//! this module only writes them.

use std::collections::BTreeSet;

use super::store::{AuditEntry, AuditKind, Grant};
use super::{
    ConnectorError, Connectors, MAX_BUDGET_CALLS, MAX_GRANTS_PER_BOT, MAX_GRANTS_PER_TICKET,
    MAX_RATE_PER_MINUTE, NewGrant, TICKET_GRANT_RATE_PER_MINUTE, invalid, manifest,
};
use crate::clock::UnixMs;
use crate::ticket::{BotId, TicketId};

impl Connectors {
    /// Checks and stores a grant; every refusal names its field and limit.
    pub async fn grant(&self, new: NewGrant, by: &str) -> Result<Grant, ConnectorError> {
        let bot = BotId::parse(&new.bot).map_err(|e| invalid("bot", e.to_string()))?;
        let manifest = self
            .inner
            .registry
            .get(&new.connector)
            .ok_or_else(|| invalid("connector", format!("no connector {:?}", new.connector)))?;
        if new.operations.is_empty() || new.operations.len() > manifest::MAX_OPERATIONS {
            return Err(invalid(
                "operations",
                format!("name 1 to {} operations", manifest::MAX_OPERATIONS),
            ));
        }
        for (i, op) in new.operations.iter().enumerate() {
            if manifest.operation(op).is_none() {
                return Err(invalid(
                    format!("operations[{i}]"),
                    format!("{:?} has no operation {op:?}", manifest.id),
                ));
            }
        }
        let offered = manifest.all_scopes();
        if new.scopes.len() > manifest::MAX_SCOPES * 4 {
            return Err(invalid(
                "scopes",
                format!(
                    "{} scopes; the limit is {}",
                    new.scopes.len(),
                    manifest::MAX_SCOPES * 4
                ),
            ));
        }
        for (i, s) in new.scopes.iter().enumerate() {
            if !offered.contains(s.as_str()) {
                return Err(invalid(
                    format!("scopes[{i}]"),
                    format!(
                        "{s:?} is not a scope of {:?}; a grant cannot be broader than its connector",
                        manifest.id
                    ),
                ));
            }
        }
        for (i, c) in new.conditions.iter().enumerate() {
            if c.param.is_empty() || c.param.len() > manifest::MAX_NAME || !c.max.is_finite() {
                return Err(invalid(
                    format!("conditions[{i}]"),
                    format!(
                        "param is 1 to {} characters and max a finite number",
                        manifest::MAX_NAME
                    ),
                ));
            }
        }
        let rate = new.rate_per_minute.unwrap_or(60);
        if !(1..=MAX_RATE_PER_MINUTE).contains(&rate) {
            return Err(invalid(
                "rate_per_minute",
                format!("{rate} is outside 1..={MAX_RATE_PER_MINUTE}"),
            ));
        }
        let budget = new.budget_calls.unwrap_or(1000);
        if !(1..=MAX_BUDGET_CALLS).contains(&budget) {
            return Err(invalid(
                "budget_calls",
                format!("{budget} is outside 1..={MAX_BUDGET_CALLS}"),
            ));
        }
        let live = self
            .inner
            .db
            .grants(Some(bot.as_str()), Some(&manifest.id))
            .await?;
        if live.len() >= MAX_GRANTS_PER_BOT {
            return Err(invalid(
                "bot",
                format!(
                    "{bot} holds {} grants on {:?} (limit {MAX_GRANTS_PER_BOT})",
                    live.len(),
                    manifest.id
                ),
            ));
        }
        let now = self.inner.clock.now_ms();
        let grant = Grant {
            id: uuid::Uuid::now_v7().to_string(),
            bot: Some(bot),
            ticket: None,
            connector: manifest.id.clone(),
            operations: new.operations,
            scopes: new.scopes,
            conditions: new.conditions,
            rate_per_minute: rate,
            budget_calls: budget,
            calls_used: 0,
            created_at_ms: now,
            expires_at_ms: None,
        };
        self.record(grant, by).await
    }

    /// Mints a grant bound to `ticket`, held by whichever bot runs it: the
    /// named operations of the enabled connector `connector` (every one
    /// must exist; its scopes are theirs, united), at
    /// [`TICKET_GRANT_RATE_PER_MINUTE`], for `budget_calls` calls, until
    /// `expires_at_ms` (after now). What approving a heal gives an
    /// investigation; audited as a grant by `by`.
    pub async fn grant_ticket(
        &self,
        ticket: TicketId,
        connector: &str,
        operations: &[String],
        expires_at_ms: UnixMs,
        budget_calls: u32,
        by: &str,
    ) -> Result<Grant, ConnectorError> {
        let manifest =
            self.inner.registry.enabled(connector).ok_or_else(|| {
                invalid("connector", format!("no enabled connector {connector:?}"))
            })?;
        if operations.is_empty() || operations.len() > manifest::MAX_OPERATIONS {
            return Err(invalid(
                "operations",
                format!(
                    "{} operations; name 1 to {}",
                    operations.len(),
                    manifest::MAX_OPERATIONS
                ),
            ));
        }
        let mut scopes = BTreeSet::new();
        for (i, op) in operations.iter().enumerate() {
            let Some(found) = manifest.operation(op) else {
                return Err(invalid(
                    format!("operations[{i}]"),
                    format!("{:?} has no operation {op:?}", manifest.id),
                ));
            };
            scopes.extend(found.scopes.iter().cloned());
        }
        let now = self.inner.clock.now_ms();
        if expires_at_ms <= now {
            return Err(invalid(
                "expires_at_ms",
                format!("{expires_at_ms} is not after now ({now})"),
            ));
        }
        if !(1..=MAX_BUDGET_CALLS).contains(&budget_calls) {
            return Err(invalid(
                "budget_calls",
                format!("{budget_calls} is outside 1..={MAX_BUDGET_CALLS}"),
            ));
        }
        let live = self
            .inner
            .db
            .grants_of_ticket(ticket)
            .await?
            .into_iter()
            .filter(|g| g.connector == manifest.id)
            .count();
        if live >= MAX_GRANTS_PER_TICKET {
            return Err(invalid(
                "ticket",
                format!(
                    "ticket {ticket} holds {live} grants on {:?} (limit {MAX_GRANTS_PER_TICKET})",
                    manifest.id
                ),
            ));
        }
        let grant = Grant {
            id: uuid::Uuid::now_v7().to_string(),
            bot: None,
            ticket: Some(ticket),
            connector: manifest.id.clone(),
            operations: operations.to_vec(),
            scopes: scopes.into_iter().collect(),
            conditions: Vec::new(),
            rate_per_minute: TICKET_GRANT_RATE_PER_MINUTE,
            budget_calls,
            calls_used: 0,
            created_at_ms: now,
            expires_at_ms: Some(expires_at_ms),
        };
        self.record(grant, by).await
    }

    /// Stores a checked grant and audits it as `by`'s.
    async fn record(&self, grant: Grant, by: &str) -> Result<Grant, ConnectorError> {
        self.inner.db.insert_grant(&grant).await?;
        let until = grant
            .expires_at_ms
            .map(|at| format!(" until {at}"))
            .unwrap_or_default();
        let mut audit = AuditEntry::new(
            AuditKind::Grant,
            format!(
                "{} may call {} with {}{until}",
                grant.holder(),
                grant.operations.join(", "),
                grant.scopes.join(" ")
            ),
        );
        audit.at_ms = grant.created_at_ms;
        audit.actor = Some(by.to_owned());
        audit.ticket = grant.ticket;
        audit.connector = Some(grant.connector.clone());
        audit.grant_id = Some(grant.id.clone());
        self.inner.db.audit(&audit).await?;
        Ok(grant)
    }

    pub async fn revoke_grant(&self, id: &str, by: &str) -> Result<(), ConnectorError> {
        let now = self.inner.clock.now_ms();
        if !self.inner.db.revoke_grant(id, now).await? {
            return Err(ConnectorError::NotFound(format!("grant {id:?}")));
        }
        let mut audit = AuditEntry::new(AuditKind::Ungrant, "grant revoked");
        audit.at_ms = now;
        audit.actor = Some(by.to_owned());
        audit.grant_id = Some(id.to_owned());
        self.inner.db.audit(&audit).await?;
        Ok(())
    }

    /// Revokes every live grant bound to `ticket` (its heal is done, or
    /// refused), each audited as `by`'s; answers how many.
    pub async fn revoke_ticket_grants(
        &self,
        ticket: TicketId,
        by: &str,
    ) -> Result<u32, ConnectorError> {
        let now = self.inner.clock.now_ms();
        let revoked = self.inner.db.revoke_ticket_grants(ticket, now).await?;
        for id in &revoked {
            let mut audit = AuditEntry::new(
                AuditKind::Ungrant,
                format!("grant bound to ticket {ticket} revoked"),
            );
            audit.at_ms = now;
            audit.actor = Some(by.to_owned());
            audit.ticket = Some(ticket);
            audit.grant_id = Some(id.clone());
            self.inner.db.audit(&audit).await?;
        }
        Ok(u32::try_from(revoked.len()).unwrap_or(u32::MAX))
    }

    /// Live grants; with `bot`, that bot's own (grants bound to a ticket
    /// alone have no bot and are listed only without it).
    pub async fn grants(&self, bot: Option<&str>) -> Result<Vec<Grant>, ConnectorError> {
        Ok(self.inner.db.grants(bot, None).await?)
    }

    /// Live grants bound to `ticket`.
    pub async fn grants_of_ticket(&self, ticket: TicketId) -> Result<Vec<Grant>, ConnectorError> {
        Ok(self.inner.db.grants_of_ticket(ticket).await?)
    }
}

#[cfg(test)]
mod tests;
