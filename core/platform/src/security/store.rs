//! Where the Security Center keeps findings, the last run of every check
//! and control, and its scans: SQLite (migration 0003). A scan's changes
//! are written in one transaction, so a crash leaves the previous scan's
//! state or this one's, never half of each.

use oshal_kernel::name::Named;
use sqlx::{Row, SqlitePool};
use std::collections::BTreeMap;

use super::triage::{Change, Known};
use super::{
    CheckRun, CheckStatus, CheckView, ControlStatus, ControlView, Finding, FindingQuery,
    FindingState, Location, Observation, ScanReport, SecurityError, Suppression, checks,
};
use crate::clock::UnixMs;
use crate::ticket::TicketId;

/// The most findings one list returns.
pub const MAX_LIST: u32 = 5_000;

#[derive(Debug, Clone)]
pub struct SecurityDb {
    pool: SqlitePool,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> SecurityError {
    SecurityError::Db(format!("a stored {what} does not parse: {e}"))
}

fn finding_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Finding, SecurityError> {
    let severity: String = row.try_get("severity")?;
    let state: String = row.try_get("state")?;
    let location: Option<String> = row.try_get("location")?;
    let previous: String = row.try_get("previous_tickets")?;
    let ticket: Option<String> = row.try_get("ticket")?;
    let reason: Option<String> = row.try_get("suppress_reason")?;
    let suppression = match reason {
        Some(reason) => Some(Suppression {
            reason,
            by: row
                .try_get::<Option<String>, _>("suppress_by")?
                .unwrap_or_default(),
            at_ms: row.try_get::<Option<i64>, _>("suppressed_at")?.unwrap_or(0),
            until_ms: row
                .try_get::<Option<i64>, _>("suppress_until")?
                .unwrap_or(0),
        }),
        None => None,
    };
    Ok(Finding {
        id: row.try_get("id")?,
        fingerprint: row.try_get("fingerprint")?,
        source: row.try_get("source")?,
        rule: row.try_get("rule")?,
        title: row.try_get("title")?,
        control: row.try_get("control")?,
        severity: super::Severity::parse(&severity)
            .ok_or_else(|| corrupt("severity", &severity))?,
        object: row.try_get("object")?,
        message: row.try_get("message")?,
        location: location
            .map(|l| serde_json::from_str::<Location>(&l))
            .transpose()
            .map_err(|e| corrupt("location", e))?,
        state: FindingState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
        first_seen_ms: row.try_get("first_seen")?,
        last_seen_ms: row.try_get("last_seen")?,
        resolved_at_ms: row.try_get("resolved_at")?,
        clean_scans: row.try_get::<i64, _>("clean_scans")? as u32,
        reopened: row.try_get::<i64, _>("reopened")? as u32,
        ticket: ticket
            .map(|t| TicketId::parse(&t).map_err(|e| corrupt("ticket", e)))
            .transpose()?,
        previous_tickets: serde_json::from_str(&previous)
            .map_err(|e| corrupt("previous tickets", e))?,
        suppression,
    })
}

const SEVERITY_ORDER: &str = "CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 \
     WHEN 'medium' THEN 2 WHEN 'low' THEN 3 ELSE 4 END";

impl SecurityDb {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// What triage needs of `source`'s stored findings.
    pub async fn known(&self, source: &str) -> Result<BTreeMap<String, Known>, SecurityError> {
        let rows = sqlx::query(
            "SELECT fingerprint, rule, state, clean_scans, suppress_until FROM security_findings WHERE source = ?1",
        )
        .bind(source)
        .fetch_all(&self.pool)
        .await?;
        let mut out = BTreeMap::new();
        for r in &rows {
            let state: String = r.try_get("state")?;
            out.insert(
                r.try_get("fingerprint")?,
                Known {
                    rule: r.try_get("rule")?,
                    state: FindingState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
                    clean_scans: r.try_get::<i64, _>("clean_scans")? as u32,
                    suppressed_until: r.try_get("suppress_until")?,
                },
            );
        }
        Ok(out)
    }

    /// Writes one scan's changes, all or nothing.
    pub async fn apply(
        &self,
        source: &str,
        seen: &BTreeMap<String, Observation>,
        changes: &BTreeMap<String, Change>,
        now: UnixMs,
    ) -> Result<(), SecurityError> {
        let mut tx = self.pool.begin().await?;
        for (fp, change) in changes {
            let o = seen.get(fp);
            let location = o
                .and_then(|o| o.location.as_ref())
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| corrupt("location", e))?;
            match (change, o) {
                (Change::New, Some(o)) => {
                    sqlx::query(
                        "INSERT INTO security_findings (fingerprint, id, source, rule, title, control, severity,
                             object, message, location, state, first_seen, last_seen)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'open', ?11, ?11)",
                    )
                    .bind(fp)
                    .bind(&fp[..16])
                    .bind(source)
                    .bind(&o.rule)
                    .bind(&o.title)
                    .bind(o.control.as_deref().filter(|c| !c.is_empty()))
                    .bind(o.severity.as_str())
                    .bind(&o.object)
                    .bind(&o.message)
                    .bind(location)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                (Change::Unchanged | Change::Unsuppressed | Change::Reopened, Some(o)) => {
                    // The message may say more this time (more matches, a
                    // new count); severity follows the rule as it is now.
                    let (state_sql, extra) = match change {
                        Change::Unchanged => ("state", ""),
                        Change::Unsuppressed => (
                            "'open'",
                            ", suppress_reason = NULL, suppress_by = NULL, suppressed_at = NULL, suppress_until = NULL",
                        ),
                        _ => (
                            "'open'",
                            ", resolved_at = NULL, reopened = reopened + 1, \
                             previous_tickets = CASE WHEN ticket IS NULL THEN previous_tickets \
                               ELSE json_insert(previous_tickets, '$[#]', ticket) END, \
                             ticket = NULL",
                        ),
                    };
                    let sql = format!(
                        "UPDATE security_findings SET state = {state_sql}, last_seen = ?2, clean_scans = 0,
                             message = ?3, severity = ?4, location = ?5, title = ?6{extra}
                         WHERE fingerprint = ?1"
                    );
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(fp)
                        .bind(now)
                        .bind(&o.message)
                        .bind(o.severity.as_str())
                        .bind(location)
                        .bind(&o.title)
                        .execute(&mut *tx)
                        .await?;
                }
                (Change::Clean, _) => {
                    sqlx::query(
                        "UPDATE security_findings SET clean_scans = clean_scans + 1 WHERE fingerprint = ?1",
                    )
                    .bind(fp)
                    .execute(&mut *tx)
                    .await?;
                }
                (Change::Resolved, _) => {
                    sqlx::query(
                        "UPDATE security_findings SET clean_scans = clean_scans + 1, state = 'resolved',
                             resolved_at = ?2, suppress_reason = NULL, suppress_by = NULL,
                             suppressed_at = NULL, suppress_until = NULL
                         WHERE fingerprint = ?1",
                    )
                    .bind(fp)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                (_, None) => {
                    return Err(SecurityError::Db(format!(
                        "triage saw {fp} without its observation"
                    )));
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Open findings whose current round has no ticket yet.
    pub async fn needing_tickets(&self) -> Result<Vec<Finding>, SecurityError> {
        let rows = sqlx::query(
            "SELECT * FROM security_findings WHERE state = 'open'
               AND (ticket_generation IS NULL OR ticket_generation <> reopened OR ticket IS NULL)
             ORDER BY first_seen, fingerprint",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(finding_from_row).collect()
    }

    pub async fn set_ticket(
        &self,
        fingerprint: &str,
        ticket: TicketId,
        generation: u32,
    ) -> Result<(), SecurityError> {
        sqlx::query(
            "UPDATE security_findings SET ticket = ?2, ticket_generation = ?3 WHERE fingerprint = ?1 AND reopened = ?3",
        )
        .bind(fingerprint)
        .bind(ticket.to_string())
        .bind(i64::from(generation))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn findings(&self, q: &FindingQuery) -> Result<Vec<Finding>, SecurityError> {
        let sql = format!(
            "SELECT * FROM security_findings WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR source = ?2)
             ORDER BY {SEVERITY_ORDER}, last_seen DESC, fingerprint LIMIT ?3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(q.state.map(FindingState::as_str))
            .bind(q.source.as_deref())
            .bind(i64::from(q.limit.unwrap_or(MAX_LIST).min(MAX_LIST)))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(finding_from_row).collect()
    }

    /// A finding by id or fingerprint.
    pub async fn finding(&self, id: &str) -> Result<Finding, SecurityError> {
        let row = sqlx::query("SELECT * FROM security_findings WHERE id = ?1 OR fingerprint = ?1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| SecurityError::NotFound(id.to_owned()))?;
        finding_from_row(&row)
    }

    pub async fn suppress(&self, id: &str, s: &Suppression) -> Result<Finding, SecurityError> {
        let current = self.finding(id).await?;
        if current.state == FindingState::Resolved {
            return Err(SecurityError::Conflict(format!(
                "finding {id} is resolved; only an open finding can be suppressed"
            )));
        }
        sqlx::query(
            "UPDATE security_findings SET state = 'suppressed', suppress_reason = ?2, suppress_by = ?3,
                 suppressed_at = ?4, suppress_until = ?5
             WHERE fingerprint = ?1",
        )
        .bind(&current.fingerprint)
        .bind(&s.reason)
        .bind(&s.by)
        .bind(s.at_ms)
        .bind(s.until_ms)
        .execute(&self.pool)
        .await?;
        self.finding(&current.fingerprint).await
    }

    /// Records every check's run and, from them, every control's status.
    pub async fn record_checks(&self, runs: &[CheckRun], now: UnixMs) -> Result<(), SecurityError> {
        let mut tx = self.pool.begin().await?;
        for r in runs {
            sqlx::query(
                "INSERT INTO security_checks (id, status, evidence, found, last_run, last_passed)
                 VALUES (?1, ?2, ?3, ?4, ?5, CASE WHEN ?2 = 'passed' THEN ?5 END)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, evidence = excluded.evidence,
                     found = excluded.found, last_run = excluded.last_run,
                     last_passed = coalesce(excluded.last_passed, security_checks.last_passed)",
            )
            .bind(&r.check)
            .bind(r.status.as_str())
            .bind(&r.evidence)
            .bind(r.observations.len() as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        for control in checks::CONTROLS {
            let mine: Vec<&CheckRun> = runs
                .iter()
                .filter(|r| checks::check(&r.check).is_some_and(|c| c.control == control.id))
                .collect();
            let applicable: Vec<&&CheckRun> = mine
                .iter()
                .filter(|r| r.status != CheckStatus::Skipped)
                .collect();
            let status = if mine.is_empty() {
                continue;
            } else if applicable.is_empty() {
                ControlStatus::NotApplicable
            } else if applicable.iter().all(|r| r.passed()) {
                ControlStatus::Proven
            } else {
                ControlStatus::Failing
            };
            let mut parts: Vec<&str> = Vec::new();
            for r in if applicable.is_empty() {
                mine.clone()
            } else {
                applicable.iter().map(|r| **r).collect()
            } {
                if !r.evidence.is_empty() && !parts.contains(&r.evidence.as_str()) {
                    parts.push(&r.evidence);
                }
            }
            sqlx::query(
                "INSERT INTO security_controls (id, status, summary, last_run, last_passed)
                 VALUES (?1, ?2, ?3, ?4, CASE WHEN ?2 = 'proven' THEN ?4 END)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status, summary = excluded.summary,
                     last_run = excluded.last_run,
                     last_passed = coalesce(excluded.last_passed, security_controls.last_passed)",
            )
            .bind(control.id)
            .bind(status.as_str())
            .bind(parts.join("; "))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn record_scan(&self, r: &ScanReport) -> Result<(), SecurityError> {
        sqlx::query(
            "INSERT INTO security_scans (id, source, started_at, finished_at, seen, new, reopened, resolved)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(&r.id)
        .bind(&r.source)
        .bind(r.started_ms)
        .bind(r.finished_ms)
        .bind(i64::from(r.seen))
        .bind(i64::from(r.new))
        .bind(i64::from(r.reopened))
        .bind(i64::from(r.resolved))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The controls board.
    pub async fn controls(&self) -> Result<Vec<ControlView>, SecurityError> {
        let check_rows = sqlx::query("SELECT * FROM security_checks")
            .fetch_all(&self.pool)
            .await?;
        let mut runs: BTreeMap<String, &sqlx::sqlite::SqliteRow> = BTreeMap::new();
        for r in &check_rows {
            runs.insert(r.try_get("id")?, r);
        }
        let open_rows = sqlx::query(
            "SELECT rule, control, count(*) AS n FROM security_findings
             WHERE state = 'open' AND source = 'oshal' GROUP BY rule, control",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut open_by_rule: BTreeMap<String, u32> = BTreeMap::new();
        let mut errors_by_control: BTreeMap<String, u32> = BTreeMap::new();
        for r in &open_rows {
            let rule: String = r.try_get("rule")?;
            let n = r.try_get::<i64, _>("n")? as u32;
            if rule == checks::CHECK_ERROR {
                if let Some(c) = r.try_get::<Option<String>, _>("control")? {
                    *errors_by_control.entry(c).or_default() += n;
                }
            } else {
                *open_by_rule.entry(rule).or_default() += n;
            }
        }
        let control_rows = sqlx::query("SELECT * FROM security_controls")
            .fetch_all(&self.pool)
            .await?;
        let mut out = Vec::new();
        for control in checks::CONTROLS {
            let row = control_rows.iter().find(|r| {
                r.try_get::<String, _>("id")
                    .is_ok_and(|id| id == control.id)
            });
            let mut views = Vec::new();
            for c in checks::checks_of(control.id) {
                let run = runs.get(c.id);
                let status: Option<String> = run.map(|r| r.try_get("status")).transpose()?;
                views.push(CheckView {
                    id: c.id.to_owned(),
                    title: c.title.to_owned(),
                    severity: c.severity,
                    rationale: c.rationale.to_owned(),
                    remediation: c.remediation.to_owned(),
                    status: status.as_deref().and_then(CheckStatus::parse),
                    evidence: run.map(|r| r.try_get("evidence")).transpose()?,
                    open: open_by_rule.get(c.id).copied().unwrap_or(0),
                    last_run_ms: run.map(|r| r.try_get("last_run")).transpose()?,
                    last_passed_ms: run.map(|r| r.try_get("last_passed")).transpose()?.flatten(),
                });
            }
            let status = match row {
                None => ControlStatus::NeverRun,
                Some(r) => {
                    let s: String = r.try_get("status")?;
                    ControlStatus::parse(&s).ok_or_else(|| corrupt("control status", &s))?
                }
            };
            out.push(ControlView {
                id: control.id.to_owned(),
                title: control.title.to_owned(),
                prevents: control.prevents.to_owned(),
                status,
                summary: row
                    .map(|r| r.try_get("summary"))
                    .transpose()?
                    .unwrap_or_default(),
                last_run_ms: row.map(|r| r.try_get("last_run")).transpose()?,
                last_passed_ms: row.map(|r| r.try_get("last_passed")).transpose()?.flatten(),
                open_findings: views.iter().map(|v| v.open).sum::<u32>()
                    + errors_by_control.get(control.id).copied().unwrap_or(0),
                checks: views,
            });
        }
        Ok(out)
    }
}
