//! The PostgreSQL checks: tenant isolation and least privilege, read from
//! the catalog and proven by a canary.
//!
//! A tenant table is a table of the schema with a `tenant_id` column. The
//! catalog part reads `pg_class`, `pg_policies`, `pg_roles`,
//! `pg_auth_members` and `pg_proc`, which every role may read, so the scan
//! can run as the application role itself. The canary then acts as that role
//! (directly, or through `SET LOCAL ROLE` when the scan connects as an
//! administrator), each read in a read-only transaction of its own that is
//! rolled back: with no tenant set, with a tenant that owns nothing, and
//! scoped to each of up to [`CANARY_TENANTS`] real tenants, it counts the
//! rows that tenant must not see. A read refused with an error leaks
//! nothing, so it is counted as refused, not as a finding (the NULLIF check
//! reports the policy that errors).

use sqlx::{PgPool, Row};

use super::CheckRun;

/// How many real tenants the cross-tenant canary visits per scan.
pub const CANARY_TENANTS: usize = 5;

/// What to check: a schema, and the role the controller connects as.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub pool: PgPool,
    pub schema: String,
    pub app_role: String,
    /// The tables that must carry tenants under row-level security (for a
    /// fleet's store, `store::postgres::TENANT_TABLES`): one missing from
    /// the catalog fails the RLS checks, so none passes over a gap.
    pub tenant_tables: Vec<String>,
}

struct TenantTable {
    name: String,
    rls: bool,
    forced: bool,
    owner: String,
}

struct Policy {
    table: String,
    name: String,
    permissive: bool,
    qual: Option<String>,
    with_check: Option<String>,
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

impl PgTarget {
    fn qualified(&self, table: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(table))
    }

    fn obj(&self, table: &str) -> String {
        format!("table {}.{}", self.schema, table)
    }
}

/// Runs every PostgreSQL check against `target`.
pub async fn run(target: &PgTarget) -> Vec<CheckRun> {
    let tables = match tenant_tables(target).await {
        Ok(t) => t,
        Err(e) => {
            return [
                "pg.rls-enabled",
                "pg.rls-forced",
                "pg.policy-present",
                "pg.policy-tenant-bound",
                "pg.policy-nullif",
                "pg.canary-cross-tenant",
                "pg.canary-no-tenant",
                "pg.app-role-superuser",
                "pg.app-role-bypassrls",
                "pg.app-role-owns",
                "pg.definer-search-path",
            ]
            .into_iter()
            .map(|id| CheckRun::error(id, format!("reading the catalog: {e}")))
            .collect();
        }
    };
    let mut runs = rls_checks(target, &tables);
    match policies(target).await {
        Ok(p) => runs.extend(policy_checks(target, &tables, &p)),
        Err(e) => {
            for id in [
                "pg.policy-present",
                "pg.policy-tenant-bound",
                "pg.policy-nullif",
            ] {
                runs.push(CheckRun::error(id, format!("reading pg_policies: {e}")));
            }
        }
    }
    runs.extend(role_checks(target, &tables).await);
    runs.push(definer_check(target).await);
    runs.extend(canary(target, &tables).await);
    runs
}

async fn tenant_tables(t: &PgTarget) -> Result<Vec<TenantTable>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.relname::text AS name, c.relrowsecurity AS rls, c.relforcerowsecurity AS forced,
                pg_get_userbyid(c.relowner)::text AS owner
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
         ORDER BY c.relname",
    )
    .bind(&t.schema)
    .fetch_all(&t.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(TenantTable {
                name: r.try_get("name")?,
                rls: r.try_get("rls")?,
                forced: r.try_get("forced")?,
                owner: r.try_get("owner")?,
            })
        })
        .collect()
}

fn rls_checks(t: &PgTarget, tables: &[TenantTable]) -> Vec<CheckRun> {
    let n = tables.len();
    let mut enabled = CheckRun::new("pg.rls-enabled");
    let mut forced = CheckRun::new("pg.rls-forced");
    for table in tables {
        if !table.rls {
            enabled.found(
                t.obj(&table.name),
                format!(
                    "row-level security is not enabled on {}.{}",
                    t.schema, table.name
                ),
            );
        }
        if !table.forced {
            forced.found(
                t.obj(&table.name),
                format!(
                    "row-level security is not forced on {}.{}: its owner {} is exempt",
                    t.schema, table.name, table.owner
                ),
            );
        }
    }
    for expected in &t.tenant_tables {
        if !tables.iter().any(|table| &table.name == expected) {
            let missing = format!(
                "{}.{expected}, a tenant table the migrations define, is missing (or has no tenant_id)",
                t.schema
            );
            enabled.found(t.obj(expected), missing.clone());
            forced.found(t.obj(expected), missing);
        }
    }
    let on = tables.iter().filter(|t| t.rls).count();
    let f = tables.iter().filter(|t| t.forced).count();
    enabled.evidence = format!("RLS enabled {on}/{n} tenant tables");
    forced.evidence = format!("RLS forced {f}/{n} tenant tables");
    vec![enabled, forced]
}

async fn policies(t: &PgTarget) -> Result<Vec<Policy>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT tablename::text AS table_name, policyname::text AS name,
                permissive = 'PERMISSIVE' AS permissive, qual, with_check
         FROM pg_policies WHERE schemaname = $1 ORDER BY tablename, policyname",
    )
    .bind(&t.schema)
    .fetch_all(&t.pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Policy {
                table: r.try_get("table_name")?,
                name: r.try_get("name")?,
                permissive: r.try_get("permissive")?,
                qual: r.try_get("qual")?,
                with_check: r.try_get("with_check")?,
            })
        })
        .collect()
}

/// The expression with case, whitespace and parentheses normalised away,
/// as far as the tests below need: `((TRUE))` → `true`.
fn normalise(expr: &str) -> String {
    expr.chars()
        .filter(|c| !c.is_whitespace() && *c != '(' && *c != ')')
        .collect::<String>()
        .to_lowercase()
}

/// Whether `expr` compares `tenant_id` with the session's tenant setting.
fn binds_tenant(expr: &str) -> bool {
    let e = normalise(expr);
    e.contains("tenant_id") && e.contains("current_setting'app.tenant_id'")
}

/// Whether `expr` reads the tenant setting only through NULLIF.
fn reads_through_nullif(expr: &str) -> bool {
    let e = normalise(expr);
    let reads = e.matches("current_setting'app.tenant_id'").count();
    let guarded = e.matches("nullifcurrent_setting'app.tenant_id'").count();
    reads == guarded
}

fn policy_checks(t: &PgTarget, tables: &[TenantTable], policies: &[Policy]) -> Vec<CheckRun> {
    let mut present = CheckRun::new("pg.policy-present");
    let mut bound = CheckRun::new("pg.policy-tenant-bound");
    let mut nullif = CheckRun::new("pg.policy-nullif");
    let mut counted = 0;
    for table in tables {
        let mine: Vec<&Policy> = policies.iter().filter(|p| p.table == table.name).collect();
        counted += mine.len();
        if table.rls && !mine.iter().any(|p| p.permissive) {
            present.found(
                t.obj(&table.name),
                format!(
                    "{}.{} has row-level security but no permissive policy: every query returns nothing",
                    t.schema, table.name
                ),
            );
        }
        for p in mine {
            let exprs: Vec<&str> = [p.qual.as_deref(), p.with_check.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            if p.permissive && (exprs.is_empty() || exprs.iter().any(|e| !binds_tenant(e))) {
                let shown = exprs
                    .iter()
                    .find(|e| !binds_tenant(e))
                    .copied()
                    .unwrap_or("(none)");
                bound.found(
                    format!("policy {} on {}.{}", p.name, t.schema, table.name),
                    format!(
                        "permissive policy {} on {}.{} does not compare tenant_id with app.tenant_id: {}",
                        p.name,
                        t.schema,
                        table.name,
                        crate::text::clip(shown, 200)
                    ),
                );
            }
            if let Some(e) = exprs
                .iter()
                .find(|e| binds_tenant(e) && !reads_through_nullif(e))
            {
                nullif.found(
                    format!("policy {} on {}.{}", p.name, t.schema, table.name),
                    format!(
                        "policy {} on {}.{} reads app.tenant_id without NULLIF: {}",
                        p.name,
                        t.schema,
                        table.name,
                        crate::text::clip(e, 200)
                    ),
                );
            }
        }
    }
    let n = tables.len();
    present.evidence = format!("{counted} policies on {n} tenant tables");
    bound.evidence = format!(
        "{} of {counted} policies bound to the tenant",
        counted - bound.observations.len()
    );
    nullif.evidence = format!(
        "{} of {counted} policies read the tenant through NULLIF",
        counted - nullif.observations.len()
    );
    vec![present, bound, nullif]
}

async fn role_checks(t: &PgTarget, tables: &[TenantTable]) -> Vec<CheckRun> {
    let ids = [
        "pg.app-role-superuser",
        "pg.app-role-bypassrls",
        "pg.app-role-owns",
    ];
    let role = match sqlx::query("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
        .bind(&t.app_role)
        .fetch_optional(&t.pool)
        .await
    {
        Ok(Some(r)) => r,
        Ok(None) => {
            return ids
                .iter()
                .map(|id| {
                    CheckRun::error(
                        id,
                        format!("the application role {} does not exist", t.app_role),
                    )
                })
                .collect();
        }
        Err(e) => {
            return ids
                .iter()
                .map(|id| CheckRun::error(id, format!("reading pg_roles: {e}")))
                .collect();
        }
    };
    let role_obj = format!("role {}", t.app_role);
    let mut superuser = CheckRun::new("pg.app-role-superuser");
    if role.try_get::<bool, _>("rolsuper").unwrap_or(true) {
        superuser.found(&role_obj, format!("{} is a superuser", t.app_role));
    }
    superuser.evidence = format!("{}: superuser {}", t.app_role, !superuser.passed());
    let mut bypass = CheckRun::new("pg.app-role-bypassrls");
    if role.try_get::<bool, _>("rolbypassrls").unwrap_or(true) {
        bypass.found(&role_obj, format!("{} has BYPASSRLS", t.app_role));
    }
    bypass.evidence = format!("{}: BYPASSRLS {}", t.app_role, !bypass.passed());

    let mut owns = CheckRun::new("pg.app-role-owns");
    // Owned objects in the schema (and the schema itself), and roles it is a
    // member of that own tenant tables (membership lets it SET ROLE to them).
    let owned = sqlx::query(
        "SELECT c.relname::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND pg_get_userbyid(c.relowner) = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
         UNION ALL
         SELECT 'schema ' || n.nspname FROM pg_namespace n WHERE n.nspname = $1 AND pg_get_userbyid(n.nspowner) = $2
         ORDER BY 1",
    )
    .bind(&t.schema)
    .bind(&t.app_role)
    .fetch_all(&t.pool)
    .await;
    let member_of = sqlx::query(
        "WITH RECURSIVE m(role) AS (
             SELECT roleid FROM pg_auth_members WHERE member = (SELECT oid FROM pg_roles WHERE rolname = $1)
             UNION SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.role)
         SELECT r.rolname::text AS name FROM m JOIN pg_roles r ON r.oid = m.role",
    )
    .bind(&t.app_role)
    .fetch_all(&t.pool)
    .await;
    match (owned, member_of) {
        (Ok(owned), Ok(member_of)) => {
            for r in &owned {
                let name: String = r.try_get("name").unwrap_or_default();
                let object = if name.starts_with("schema ") {
                    name.clone()
                } else {
                    t.obj(&name)
                };
                owns.found(object, format!("{} owns {name}", t.app_role));
            }
            let roles: Vec<String> = member_of
                .iter()
                .filter_map(|r| r.try_get::<String, _>("name").ok())
                .collect();
            for table in tables.iter().filter(|tb| roles.contains(&tb.owner)) {
                owns.found(
                    format!("membership {} in {}", t.app_role, table.owner),
                    format!(
                        "{} is a member of {}, which owns {}.{}",
                        t.app_role, table.owner, t.schema, table.name
                    ),
                );
            }
            owns.observations.dedup_by(|a, b| a.object == b.object);
            owns.evidence = format!(
                "{} owns {} objects in {}",
                t.app_role,
                owned.len(),
                t.schema
            );
        }
        (Err(e), _) | (_, Err(e)) => {
            owns = CheckRun::error("pg.app-role-owns", format!("reading ownership: {e}"));
        }
    }
    vec![superuser, bypass, owns]
}

async fn definer_check(t: &PgTarget) -> CheckRun {
    let mut run = CheckRun::new("pg.definer-search-path");
    let rows = match sqlx::query(
        "SELECT p.oid::regprocedure::text AS name, coalesce(p.proconfig, '{}') AS config
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = $1 AND p.prosecdef ORDER BY 1",
    )
    .bind(&t.schema)
    .fetch_all(&t.pool)
    .await
    {
        Ok(r) => r,
        Err(e) => return CheckRun::error(&run.check, format!("reading pg_proc: {e}")),
    };
    for r in &rows {
        let name: String = r.try_get("name").unwrap_or_default();
        let config: Vec<String> = r.try_get("config").unwrap_or_default();
        if !config.iter().any(|c| c.starts_with("search_path=")) {
            run.found(
                format!("function {}.{name}", t.schema),
                format!("SECURITY DEFINER function {name} does not pin search_path"),
            );
        }
    }
    run.evidence = format!(
        "{} of {} SECURITY DEFINER functions pin search_path",
        rows.len() - run.observations.len(),
        rows.len()
    );
    run
}

/// The live canary. Counts, as the application role, what each scope must
/// not see.
async fn canary(t: &PgTarget, tables: &[TenantTable]) -> Vec<CheckRun> {
    let mut cross = CheckRun::new("pg.canary-cross-tenant");
    let mut none = CheckRun::new("pg.canary-no-tenant");
    // Real tenants come from the directory table when there is one; without
    // it the stranger tenant still probes.
    let tenants: Vec<uuid::Uuid> =
        match sqlx::query_scalar::<_, uuid::Uuid>(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM {} ORDER BY id LIMIT {CANARY_TENANTS}",
            t.qualified("tenants")
        )))
        .fetch_all(&t.pool)
        .await
        {
            Ok(tenants) => tenants,
            Err(e) => {
                // Without the tenants, "nothing leaked across them" proves
                // nothing: the canary errs rather than pass.
                let e = format!("canary: cannot read the tenants: {e}");
                return vec![
                    CheckRun::error(&cross.check, e.clone()),
                    CheckRun::error(&none.check, e),
                ];
            }
        };
    if tenants.len() < 2 {
        cross.found(
            t.obj("tenants"),
            format!(
                "{} real tenants in {}.tenants: crossing between tenants needs two to compare, so nothing is proven yet",
                tenants.len(),
                t.schema
            ),
        );
    }
    // Each probe: the tenant setting, the tenant whose own rows are not
    // counted (none: every visible row counts), and who that is. With no
    // tenant, the setting is tried reset to '' (as after an earlier
    // transaction) and never set.
    let stranger = uuid::Uuid::new_v4();
    let mut probes: Vec<(Option<String>, Option<uuid::Uuid>, String)> = vec![
        (Some(String::new()), None, "with no tenant set".into()),
        (None, None, "with no tenant set".into()),
        (
            Some(stranger.to_string()),
            Some(stranger),
            "scoped to a tenant that owns nothing".into(),
        ),
    ];
    probes.extend(tenants.iter().map(|id| {
        (
            Some(id.to_string()),
            Some(*id),
            format!("scoped to tenant {id}"),
        )
    }));
    let mut reads = 0usize;
    let mut refused = 0usize;
    for table in tables {
        let everything = format!("SELECT count(*) FROM {}", t.qualified(&table.name));
        let others = format!("{everything} WHERE tenant_id IS DISTINCT FROM $1::uuid");
        for (setting, own, whose) in &probes {
            reads += 1;
            let sql = if own.is_some() { &others } else { &everything };
            match count_as_app(t, setting.as_deref(), sql, *own).await {
                Ok(0) => {}
                Ok(n) => {
                    let (run, rows) = match own {
                        Some(_) => (&mut cross, "rows of other tenants in"),
                        None => (&mut none, "rows of"),
                    };
                    run.found(
                        t.obj(&table.name),
                        format!(
                            "as {} {whose}, {n} {rows} {}.{} are visible",
                            t.app_role, t.schema, table.name
                        ),
                    );
                }
                Err(CanaryError::Refused) => refused += 1,
                Err(CanaryError::Failed(e)) => {
                    return vec![
                        CheckRun::error(&cross.check, e.clone()),
                        CheckRun::error(&none.check, e),
                    ];
                }
            }
        }
    }
    cross.observations.dedup_by(|a, b| a.object == b.object);
    none.observations.dedup_by(|a, b| a.object == b.object);
    let refused_note = if refused > 0 {
        format!(", {refused} refused with an error")
    } else {
        String::new()
    };
    let leaked = cross.observations.len() + none.observations.len();
    let summary = format!(
        "canary {} rows: {reads} reads as {} on {} tables, {} real tenants{refused_note}",
        if leaked == 0 { "0" } else { "> 0" },
        t.app_role,
        tables.len(),
        tenants.len()
    );
    cross.evidence = summary.clone();
    none.evidence = summary;
    vec![cross, none]
}

enum CanaryError {
    /// The database refused the read (a policy erred, no privilege): no
    /// rows leaked.
    Refused,
    /// The canary itself could not run (no connection, cannot act as the
    /// role).
    Failed(String),
}

/// One count in a read-only transaction of its own, as the application
/// role, with `app.tenant_id` set to `setting` (`None`: never set).
async fn count_as_app(
    t: &PgTarget,
    setting: Option<&str>,
    sql: &str,
    bind: Option<uuid::Uuid>,
) -> Result<i64, CanaryError> {
    let failed = |what: &str, e: sqlx::Error| CanaryError::Failed(format!("canary: {what}: {e}"));
    let mut tx = t.pool.begin().await.map_err(|e| failed("connecting", e))?;
    sqlx::query("SET TRANSACTION READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(|e| failed("read only", e))?;
    let current: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| failed("current_user", e))?;
    if current != t.app_role {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SET LOCAL ROLE {}",
            quote_ident(&t.app_role)
        )))
        .execute(&mut *tx)
        .await
        .map_err(|e| failed(&format!("acting as {}", t.app_role), e))?;
    }
    if let Some(value) = setting {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(|e| failed("setting the tenant", e))?;
    }
    let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()));
    if let Some(id) = bind {
        q = q.bind(id);
    }
    let counted = q.fetch_one(&mut *tx).await;
    // Rolled back on drop either way; nothing was written.
    drop(tx);
    counted.map_err(|e| match &e {
        sqlx::Error::Database(_) => CanaryError::Refused,
        _ => failed("reading", e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_expressions_are_read_as_postgres_prints_them() {
        let good =
            "(tenant_id = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)";
        assert!(binds_tenant(good) && reads_through_nullif(good));
        let coalesce = "(tenant_id = (COALESCE(current_setting('app.tenant_id'::text, true), '00000000-0000-0000-0000-000000000000'::text))::uuid)";
        assert!(binds_tenant(coalesce) && !reads_through_nullif(coalesce));
        assert!(!binds_tenant("true"));
        assert!(!binds_tenant("(tenant_id IS NOT NULL)"));
    }
}
