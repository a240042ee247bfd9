//! Security Center tests against the real components: PostgreSQL (each case
//! its own schema and role), a controller on a SQLite file with the
//! built-in model's bots (the triage tickets really run), real files with
//! real permissions, and the SARIF 2.1.0 JSON schema.

use super::*;
use crate::clock::{Clock, SystemClock};
use crate::controller::Controller;
use crate::controller::{ControllerConfig, LocalPool};
use crate::store::sqlite::SqliteStore;
use crate::store::{Store, TicketUpdate, WriteBatch};
use crate::ticket::TicketId;
use crate::ticket::{BotId, TicketState, TransitionKind};
use oshal_kernel::name::Named;
use sqlx::postgres::PgPoolOptions;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

// ---- PostgreSQL -------------------------------------------------------------

async fn admin_pool() -> sqlx::PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(&crate::store::postgres::testing::admin_url())
        .await
        .expect("the test PostgreSQL answers")
}

/// A schema with two tenant tables, a tenant directory and a pinned
/// SECURITY DEFINER function, isolated as the migrations do it, and an
/// application role of its own with DML grants.
struct PgCase {
    admin: sqlx::PgPool,
    schema: String,
    role: String,
}

impl PgCase {
    async fn new(name: &str) -> Self {
        let admin = admin_pool().await;
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let schema = format!("sec_{name}_{}", &tag[20..]);
        let role = format!("sec_app_{name}_{}", &tag[20..]);
        let policy = "tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid";
        let mut ddl = format!(
            "CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS NOINHERIT;
             CREATE SCHEMA {schema};
             CREATE TABLE {schema}.tenants (id uuid PRIMARY KEY, name text NOT NULL);
             CREATE TABLE {schema}.tickets (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, body text);
             CREATE TABLE {schema}.ledger (id uuid PRIMARY KEY, tenant_id uuid NOT NULL, cost bigint);
             CREATE FUNCTION {schema}.pinned() RETURNS int LANGUAGE sql SECURITY DEFINER
                 SET search_path = {schema}, pg_temp AS 'SELECT 1';
             GRANT USAGE ON SCHEMA {schema} TO {role};
             GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {schema} TO {role};"
        );
        for t in ["tickets", "ledger"] {
            ddl.push_str(&format!(
                "ALTER TABLE {schema}.{t} ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE {schema}.{t} FORCE ROW LEVEL SECURITY;
                 CREATE POLICY tenant_isolation ON {schema}.{t} USING ({policy}) WITH CHECK ({policy});"
            ));
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
            .execute(&admin)
            .await
            .unwrap();
        Self {
            admin,
            schema,
            role,
        }
    }

    /// Two tenants in the directory (owning no rows), so the canary has
    /// tenants to compare.
    async fn with_two_tenants(&self) {
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        self.exec(&format!(
            "INSERT INTO {{s}}.tenants VALUES ('{a}', 'a'), ('{b}', 'b')"
        ))
        .await;
    }

    async fn exec(&self, sql: &str) {
        let sql = sql
            .replace("{s}", &self.schema)
            .replace("{role}", &self.role);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.admin)
            .await
            .unwrap();
    }

    fn target(&self) -> postgres::PgTarget {
        postgres::PgTarget {
            pool: self.admin.clone(),
            schema: self.schema.clone(),
            app_role: self.role.clone(),
            tenant_tables: vec!["ledger".into(), "tickets".into()],
        }
    }

    /// The checks that found something, and every observation.
    async fn scan(&self) -> (BTreeSet<String>, Vec<Observation>) {
        let runs = postgres::run(&self.target()).await;
        assert_eq!(runs.len(), 11, "every PostgreSQL check ran: {runs:#?}");
        let obs: Vec<Observation> = runs.iter().flat_map(|r| r.observations.clone()).collect();
        (obs.iter().map(|o| o.rule.clone()).collect(), obs)
    }

    async fn drop(self) {
        self.exec("DROP SCHEMA {s} CASCADE; DROP OWNED BY {role}; DROP ROLE {role};")
            .await;
        self.admin.close().await;
    }
}

#[tokio::test]
async fn each_database_violation_is_found_and_only_it() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("clean", "", &[]),
        (
            "rlsoff",
            "ALTER TABLE {s}.tickets DISABLE ROW LEVEL SECURITY",
            &["pg.rls-enabled"],
        ),
        (
            "noforce",
            "ALTER TABLE {s}.ledger NO FORCE ROW LEVEL SECURITY",
            &["pg.rls-forced"],
        ),
        (
            "alwaystrue",
            "CREATE POLICY open_all ON {s}.tickets USING (true)",
            &["pg.policy-tenant-bound"],
        ),
        (
            "nopolicy",
            "DROP POLICY tenant_isolation ON {s}.ledger",
            &["pg.policy-present"],
        ),
        (
            "coalesce",
            "DROP POLICY tenant_isolation ON {s}.tickets;
             CREATE POLICY tenant_isolation ON {s}.tickets
                 USING (tenant_id = coalesce(current_setting('app.tenant_id', true), '00000000-0000-0000-0000-000000000000')::uuid)
                 WITH CHECK (tenant_id = coalesce(current_setting('app.tenant_id', true), '00000000-0000-0000-0000-000000000000')::uuid)",
            &["pg.policy-nullif"],
        ),
        (
            "bypass",
            "ALTER ROLE {role} BYPASSRLS",
            &["pg.app-role-bypassrls"],
        ),
        (
            "superuser",
            "ALTER ROLE {role} SUPERUSER",
            &["pg.app-role-superuser"],
        ),
        (
            "owner",
            "ALTER TABLE {s}.ledger OWNER TO {role}",
            &["pg.app-role-owns"],
        ),
        (
            "definer",
            "CREATE FUNCTION {s}.unpinned() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'",
            &["pg.definer-search-path"],
        ),
    ];
    for (name, violation, expected) in cases {
        let case = PgCase::new(name).await;
        case.with_two_tenants().await;
        if !violation.is_empty() {
            case.exec(violation).await;
        }
        let (found, obs) = case.scan().await;
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(found, expected, "case {name}: {obs:#?}");
        // One object each, named in the finding.
        assert_eq!(obs.len(), expected.len(), "case {name}: {obs:#?}");
        case.drop().await;
    }
}

#[tokio::test]
async fn the_canary_reads_nothing_across_tenants_until_a_policy_leaks() {
    let case = PgCase::new("canary").await;
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    case.exec(&format!(
        "INSERT INTO {{s}}.tenants VALUES ('{a}', 'a'), ('{b}', 'b');
         INSERT INTO {{s}}.tickets SELECT gen_random_uuid(), t, 'x' FROM (VALUES ('{a}'::uuid), ('{b}'::uuid)) v(t), generate_series(1, 3);
         INSERT INTO {{s}}.ledger SELECT gen_random_uuid(), t, 1 FROM (VALUES ('{a}'::uuid), ('{b}'::uuid)) v(t), generate_series(1, 3);"
    ))
    .await;
    let runs = postgres::run(&case.target()).await;
    let canary = runs
        .iter()
        .find(|r| r.check == "pg.canary-cross-tenant")
        .unwrap();
    assert!(canary.passed(), "{canary:#?}");
    assert!(
        canary.evidence.starts_with("canary 0 rows") && canary.evidence.contains("2 real tenants"),
        "{}",
        canary.evidence
    );
    let (found, _) = case.scan().await;
    assert!(found.is_empty(), "{found:?}");

    // A permissive always-true policy: the static check and both canaries
    // see it, on that table only.
    case.exec("CREATE POLICY open_all ON {s}.tickets USING (true)")
        .await;
    let (found, obs) = case.scan().await;
    let expected: BTreeSet<String> = [
        "pg.policy-tenant-bound",
        "pg.canary-cross-tenant",
        "pg.canary-no-tenant",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(found, expected, "{obs:#?}");
    for o in obs.iter().filter(|o| o.rule.starts_with("pg.canary")) {
        assert_eq!(o.object, format!("table {}.tickets", case.schema));
        assert!(
            o.message.contains("6 rows") || o.message.contains("3 rows"),
            "{}",
            o.message
        );
    }
    case.drop().await;
}

/// The fleet's own schema, as `oshal db-setup` makes it, scanned as the
/// controller's role: every control holds.
#[tokio::test]
async fn the_shipped_fleet_schema_passes_every_database_check() {
    let db = crate::store::postgres::testing::TestDb::new().await;
    let target = postgres::PgTarget {
        pool: db.store.pool().clone(),
        schema: db.schema.clone(),
        app_role: crate::store::postgres::APP_ROLE.into(),
        tenant_tables: crate::store::postgres::TENANT_TABLES
            .iter()
            .map(|t| (*t).to_owned())
            .collect(),
    };
    // Two tenants with data, so the canary has tenants to compare.
    for tenant in ["acme", "globex"] {
        let (_, mut batch) = crate::store::fixtures::finished_batch(tenant, None, 1);
        batch.tenants.push(crate::store::Tenant {
            id: crate::ticket::TenantId::parse(tenant).unwrap(),
            budget_nusd: None,
            created_at_ms: 1,
        });
        db.store.apply(&batch).await.unwrap();
    }
    let runs = postgres::run(&target).await;
    for r in &runs {
        assert!(r.passed(), "{} on the shipped schema: {r:#?}", r.check);
    }
    let forced = runs.iter().find(|r| r.check == "pg.rls-forced").unwrap();
    assert_eq!(forced.evidence, "RLS forced 6/6 tenant tables");
    db.drop().await;
}

/// Proofs that passed over nothing: a canary with no tenant (or one) to
/// compare "proved" isolation, an unreadable tenant directory read as no
/// tenants, and a tenant table missing from the catalog was never checked.
#[tokio::test]
async fn no_database_proof_passes_vacuously() {
    let case = PgCase::new("vacuous").await;
    let one = uuid::Uuid::new_v4();
    case.exec(&format!(
        "INSERT INTO {{s}}.tenants VALUES ('{one}', 'only')"
    ))
    .await;
    let (found, obs) = case.scan().await;
    assert_eq!(
        found,
        BTreeSet::from(["pg.canary-cross-tenant".to_owned()]),
        "{obs:#?}"
    );
    assert!(obs[0].message.contains("nothing is proven"), "{obs:#?}");

    // A tenant table the migrations define is missing from the catalog.
    let mut target = case.target();
    target.tenant_tables.push("effects".into());
    let runs = postgres::run(&target).await;
    for check in ["pg.rls-enabled", "pg.rls-forced"] {
        let run = runs.iter().find(|r| r.check == check).unwrap();
        assert!(!run.passed(), "{run:#?}");
        assert!(
            run.observations[0]
                .message
                .contains("effects, a tenant table"),
            "{run:#?}"
        );
    }

    // The directory cannot be read: the canary errs, it does not pass.
    case.exec("DROP TABLE {s}.tenants").await;
    let runs = postgres::run(&case.target()).await;
    for check in ["pg.canary-cross-tenant", "pg.canary-no-tenant"] {
        let run = runs.iter().find(|r| r.check == check).unwrap();
        assert_eq!(run.status, CheckStatus::Error, "{run:#?}");
        assert!(run.evidence.contains("cannot read the tenants"), "{run:#?}");
    }
    case.drop().await;
}

// ---- the centre over a real controller ----------------------------------

struct Rig {
    dir: tempfile::TempDir,
    controller: Controller,
    center: SecurityCenter,
}

impl Rig {
    /// A controller (2 built-in bots, SQLite) and its Security Center,
    /// scanning `dir/config` and `dir/logs`. `plant` writes to the store
    /// before the controller starts.
    async fn new(resolve_after: u32, plant: impl AsyncFnOnce(&SqliteStore)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["config", "logs"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        plant(&store).await;
        let controller = Controller::start(
            ControllerConfig::default(),
            store.clone(),
            LocalPool::builtin(2),
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        let config = SecurityConfig {
            scan_paths: vec![dir.path().join("config"), dir.path().join("logs")],
            resolve_after,
            ..SecurityConfig::default()
        };
        let center = SecurityCenter::open(
            store.pool().clone(),
            controller.clone(),
            config,
            Arc::new(SystemClock),
        )
        .await
        .unwrap();
        Self {
            dir,
            controller,
            center,
        }
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str, mode: u32) {
        let p = self.path(rel);
        std::fs::write(&p, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let _ = mode;
    }

    async fn open(&self) -> Vec<Finding> {
        self.center
            .findings(&FindingQuery {
                state: Some(FindingState::Open),
                ..Default::default()
            })
            .await
            .unwrap()
    }
}

const OPENAI: &str = "sk-proj-T3stK3yN0tR3al9aBcDeFgHiJkLm";
const GITHUB: &str = "ghp_T3stT0kenN0tR3alAbCdEfGhIjKlMnOpQrSt";
const AWS: &str = "AKIAZ7Q4LMNB2XKD3PQR";

/// Writes a finished ticket whose failure event quotes an AWS key (as an
/// upstream error might) and whose result holds nothing secret.
async fn plant_event(store: &SqliteStore) {
    let (mut t, created) = crate::store::fixtures::ticket("default", None);
    let bot = BotId::parse("bot-01").unwrap();
    let mut batch = WriteBatch {
        new_tickets: vec![t.clone()],
        transitions: vec![created],
        ..Default::default()
    };
    for (kind, reason, at) in [
        (TransitionKind::Route, "routed", 1_001),
        (TransitionKind::Start, "started", 1_002),
        (
            TransitionKind::Fail,
            &*format!("upstream refused key {AWS}: 403"),
            1_003,
        ),
        (TransitionKind::GiveUp, "no attempts left", 1_004),
    ] {
        let b = (kind == TransitionKind::Route).then_some(&bot);
        batch
            .transitions
            .push(t.apply(kind, b, reason, at).unwrap());
        batch.updates.push(TicketUpdate::of(&t));
    }
    batch.coalesce();
    store.apply(&batch).await.unwrap();
}

#[tokio::test]
async fn planted_secrets_are_found_and_never_echoed() {
    let rig = Rig::new(2, plant_event).await;
    rig.write(
        "config/oshal.toml",
        &format!("[model]\nurl = \"http://127.0.0.1:11434\"\nopenai_api_key = \"{OPENAI}\"\n"),
        0o600,
    );
    rig.write(
        "logs/oshal.log",
        &format!(
            "2026-11-21T10:00:00Z INFO started\n2026-11-21T10:00:01Z WARN retry with {GITHUB}\n"
        ),
        0o600,
    );
    rig.write("config/vault-token", "hvs.not-a-real-token", 0o644);
    rig.write(
        "config/api-token",
        "0123456789abcdef0123456789abcdef",
        0o600,
    );
    rig.write(
        "config/README",
        "nothing to see: password = ${DB_PASSWORD}\n",
        0o644,
    );

    let report = rig.center.scan().await.unwrap();
    let found: Vec<(String, String)> = report
        .findings
        .iter()
        .map(|f| (f.rule.clone(), f.object.clone()))
        .collect();
    let config = rig.path("config/oshal.toml");
    let log = rig.path("logs/oshal.log");
    let vault = rig.path("config/vault-token");
    let mut expected = vec![
        (
            "secrets.exposed".to_owned(),
            format!("file {} (openai-api-key)", config.display()),
        ),
        (
            "secrets.exposed".to_owned(),
            format!("file {} (github-token)", log.display()),
        ),
        (
            "secrets.token-file-permissions".to_owned(),
            format!("file {}", vault.display()),
        ),
    ];
    let event = found
        .iter()
        .find(|(_, o)| {
            o.starts_with("ticket ") && o.contains("event 3") && o.ends_with("(aws-access-key-id)")
        })
        .unwrap_or_else(|| panic!("the event's key is found: {found:#?}"))
        .clone();
    expected.push(event);
    expected.sort();
    let mut found = found;
    found.sort();
    assert_eq!(found, expected);
    assert_eq!(report.new, 4);
    assert_eq!(report.tickets_filed, 4);
    let in_log = report
        .findings
        .iter()
        .find(|f| f.object.contains("oshal.log"))
        .unwrap();
    assert_eq!(
        in_log.location,
        Some(Location {
            uri: log.display().to_string(),
            line: Some(2)
        })
    );
    assert!(in_log.message.contains("line 2") && in_log.message.contains("40 characters"));

    // Never echoed: not in findings, SARIF, the controls, nor the tickets
    // (whose bots have answered by the time we look).
    let mut everything = serde_json::to_string(&rig.open().await).unwrap();
    everything.push_str(&rig.center.export_sarif().await.unwrap().to_string());
    everything.push_str(&serde_json::to_string(&rig.center.controls().await.unwrap()).unwrap());
    for f in &report.findings {
        let id = f.ticket.expect("every open finding has its ticket");
        let view = wait_terminal(&rig.controller, id).await;
        assert_eq!(view.state, TicketState::Succeeded, "{view:#?}");
        assert_eq!(view.kind, "chat");
        assert!(view.payload.to_string().contains(&f.id));
        everything.push_str(&serde_json::to_string(&view).unwrap());
    }
    for secret in [OPENAI, GITHUB, AWS, "hvs.not-a-real-token"] {
        assert!(!everything.contains(secret), "{secret} was echoed");
    }
    let secrets = rig
        .center
        .controls()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == "secret-hygiene")
        .unwrap();
    assert_eq!(secrets.status, ControlStatus::Failing);
    assert_eq!(secrets.open_findings, 4);
    assert!(secrets.summary.contains("files and"), "{}", secrets.summary);
    rig.controller.shutdown().await;
}

async fn wait_terminal(c: &Controller, id: TicketId) -> crate::store::TicketView {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = c.ticket(id).await.unwrap();
        if v.state.is_terminal() || tokio::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn triage_opens_keeps_resolves_and_reopens_with_tickets() {
    let rig = Rig::new(2, async |_| {}).await;
    let leak = format!("openai_api_key = \"{OPENAI}\"\n");
    rig.write("config/app.env", &leak, 0o600);

    // New: one finding, one ticket.
    let first = rig.center.scan().await.unwrap();
    assert_eq!((first.new, first.tickets_filed), (1, 1));
    let finding = first.findings[0].clone();
    let ticket = finding.ticket.unwrap();
    assert_eq!(
        wait_terminal(&rig.controller, ticket).await.state,
        TicketState::Succeeded
    );

    // Unchanged: nothing new, the same ticket.
    let again = rig.center.scan().await.unwrap();
    assert_eq!((again.new, again.tickets_filed, again.seen), (0, 0, 1));
    assert_eq!(again.findings[0].ticket, Some(ticket));
    assert_eq!(again.findings[0].first_seen_ms, finding.first_seen_ms);

    // Fixed: still open after one clean scan, resolved after two.
    std::fs::remove_file(rig.path("config/app.env")).unwrap();
    let clean = rig.center.scan().await.unwrap();
    assert_eq!(clean.resolved, 0);
    assert_eq!(clean.findings[0].clean_scans, 1);
    let resolved = rig.center.scan().await.unwrap();
    assert_eq!(resolved.resolved, 1);
    assert!(resolved.findings.is_empty());
    let all = rig.center.findings(&FindingQuery::default()).await.unwrap();
    assert_eq!(all[0].state, FindingState::Resolved);
    assert!(all[0].resolved_at_ms.is_some());

    // Regressed: reopened, with a follow-up ticket whose parent is the first.
    rig.write("config/app.env", &leak, 0o600);
    let back = rig.center.scan().await.unwrap();
    assert_eq!((back.new, back.reopened, back.tickets_filed), (0, 1, 1));
    let f = &back.findings[0];
    assert_eq!(f.fingerprint, finding.fingerprint, "the same finding");
    assert_eq!(f.reopened, 1);
    assert_eq!(f.previous_tickets, vec![ticket]);
    let follow_up = f.ticket.unwrap();
    assert_ne!(follow_up, ticket);
    let view = wait_terminal(&rig.controller, follow_up).await;
    assert_eq!(view.parent_id, Some(ticket));

    // Suppressed with a justification: a rescan keeps it suppressed and
    // files nothing. Bad requests name their field.
    for (req, field) in [
        (
            SuppressRequest {
                reason: " ".into(),
                days: 7,
            },
            "reason",
        ),
        (
            SuppressRequest {
                reason: "ok".into(),
                days: 0,
            },
            "days",
        ),
        (
            SuppressRequest {
                reason: "ok".into(),
                days: 366,
            },
            "days",
        ),
    ] {
        match rig.center.suppress(&f.id, &req, "test").await {
            Err(SecurityError::Invalid { field: got, .. }) => assert_eq!(got, field),
            other => panic!("{req:?}: {other:?}"),
        }
    }
    assert!(matches!(
        rig.center
            .suppress(
                "0000000000000000",
                &SuppressRequest {
                    reason: "x".into(),
                    days: 1
                },
                "t"
            )
            .await,
        Err(SecurityError::NotFound(_))
    ));
    let s = rig
        .center
        .suppress(
            &f.id,
            &SuppressRequest {
                reason: "test fixture key, rotated".into(),
                days: 7,
            },
            "operator",
        )
        .await
        .unwrap();
    assert_eq!(s.state, FindingState::Suppressed);
    let quiet = rig.center.scan().await.unwrap();
    assert_eq!((quiet.new, quiet.tickets_filed), (0, 0));
    assert_eq!(quiet.findings[0].state, FindingState::Suppressed);
    let sarif = rig.center.export_sarif().await.unwrap();
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(
        result["suppressions"][0]["justification"],
        "test fixture key, rotated"
    );
    rig.controller.shutdown().await;
}

/// A crash between filing a ticket and recording it files no second
/// ticket: the retry's idempotency key finds the first.
#[tokio::test]
async fn a_lost_ticket_record_is_repaired_without_a_second_ticket() {
    let rig = Rig::new(2, async |_| {}).await;
    rig.write(
        "config/app.env",
        &format!("api_key = \"{OPENAI}\"\n"),
        0o600,
    );
    let first = rig.center.scan().await.unwrap();
    let ticket = first.findings[0].ticket.unwrap();
    // Forget the record, as if the process died right after submitting.
    sqlx::query("UPDATE security_findings SET ticket = NULL, ticket_generation = NULL")
        .execute(rig.center.inner.db.pool())
        .await
        .unwrap();
    let again = rig.center.scan().await.unwrap();
    assert_eq!(again.tickets_filed, 0);
    assert_eq!(again.findings[0].ticket, Some(ticket));
    let page = rig
        .controller
        .tickets(&crate::store::TicketQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.tickets.len(), 1, "one ticket in all");
    rig.controller.shutdown().await;
}

// ---- connectors, probes, surfaces -------------------------------------------

#[tokio::test]
async fn connector_checks_and_the_fail_closed_probe_catch_a_bad_grant() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).await.unwrap();
    let connectors = crate::connector::Connectors::open(
        crate::connector::store::sqlite(store.pool().clone()),
        Arc::new(crate::connector::broker::keyring::KeyringBackend::default()),
        crate::connector::signing::TrustedKeys::shipped(),
        crate::security::secrets::SecretRules::shipped_shared(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let bots = vec!["bot-01".to_owned()];
    let runs = platform::connector_checks(Some(&connectors), &bots).await;
    assert!(runs.iter().all(CheckRun::passed), "{runs:#?}");
    let probes = platform::probes(Some(&connectors)).await;
    assert!(probes.iter().all(CheckRun::passed), "{probes:#?}");
    assert!(
        probes[0].evidence.ends_with("denied"),
        "{}",
        probes[0].evidence
    );
    assert_eq!(
        probes[1].evidence,
        "forged token refused, misbound token refused"
    );

    // The probe's own id holds a grant now: the gate allows it, and the
    // probe says so; the grant also names a bot this controller lacks.
    let view = connectors.list().into_iter().find(|v| v.enabled).unwrap();
    let op = &view.operations[0];
    connectors
        .grant(
            crate::connector::NewGrant {
                bot: platform::PROBE_BOT.into(),
                connector: view.id.clone(),
                operations: vec![op.id.clone()],
                scopes: op.scopes.clone(),
                conditions: vec![],
                rate_per_minute: None,
                budget_calls: None,
            },
            "test",
        )
        .await
        .unwrap();
    let probes = platform::probes(Some(&connectors)).await;
    assert_eq!(probes[0].status, CheckStatus::Failed, "{probes:#?}");
    assert!(probes[1].passed());
    let runs = platform::connector_checks(Some(&connectors), &bots).await;
    let failed: Vec<&str> = runs
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.check.as_str())
        .collect();
    assert_eq!(failed, ["connectors.grant-orphaned"], "{runs:#?}");
    store.close().await;
}

// ---- SARIF ----------------------------------------------------------------

fn sarif_schema() -> jsonschema::Validator {
    let text = include_str!("../../../../assets/security/sarif-schema-2.1.0.json");
    let schema: serde_json::Value = serde_json::from_str(text).unwrap();
    // The OASIS schema, with one erratum escaped: its `language` patterns
    // end in a stray `]`, which ECMA regexes read as a literal and Rust's
    // refuses; `\\]` means the same and compiles.
    jsonschema::validator_for(&schema).unwrap()
}

#[tokio::test]
async fn sarif_round_trips_and_validates_against_the_schema() {
    let rig = Rig::new(2, async |_| {}).await;
    rig.write(
        "config/app.env",
        &format!("password = \"{OPENAI}xyz\"\n"),
        0o600,
    );
    rig.center.scan().await.unwrap();
    let log = rig.center.export_sarif().await.unwrap();
    let validator = sarif_schema();
    let errors: Vec<String> = validator.iter_errors(&log).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "Oshal");
    let result = &run["results"][0];
    assert_eq!(result["ruleId"], "secrets.exposed");
    assert_eq!(
        result["partialFingerprints"]["oshal/v1"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    let rule = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "secrets.exposed")
        .unwrap();
    assert_eq!(rule["properties"]["security-severity"], "8.0");

    // Our own log is refused as an import (it would shadow our scan)…
    let own = serde_json::to_vec(&log).unwrap();
    match rig.center.import_sarif(&own).await {
        Err(SecurityError::Invalid { field, .. }) => assert_eq!(field, "runs[].tool.driver.name"),
        other => panic!("{other:?}"),
    }
    // …but renamed, it imports into the same shape of findings.
    let mut renamed = log.clone();
    renamed["runs"][0]["tool"]["driver"]["name"] = "Other Scanner".into();
    let reports = rig
        .center
        .import_sarif(&serde_json::to_vec(&renamed).unwrap())
        .await
        .unwrap();
    assert_eq!(reports[0].source, "other-scanner");
    let imported = &reports[0].findings[0];
    let ours = &rig
        .open()
        .await
        .into_iter()
        .find(|f| f.source == OSHAL)
        .unwrap();
    assert_eq!(
        (&imported.rule, &imported.severity, &imported.location),
        (&ours.rule, &ours.severity, &ours.location)
    );
    rig.controller.shutdown().await;
}

#[tokio::test]
async fn a_trivy_log_imports_into_findings_and_tickets() {
    let rig = Rig::new(1, async |_| {}).await;
    let trivy = include_bytes!("../../tests/fixtures/trivy.sarif.json");
    let reports = rig.center.import_sarif(trivy).await.unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.source, "trivy");
    assert_eq!((r.seen, r.new, r.tickets_filed), (3, 3, 3));
    let by_rule = |id: &str| r.findings.iter().find(|f| f.rule == id).unwrap();
    let critical = by_rule("CVE-2024-21538");
    assert_eq!(
        critical.severity,
        Severity::High,
        "security-severity 7.5 is high"
    );
    assert_eq!(critical.object, "package-lock.json");
    assert_eq!(critical.location.as_ref().unwrap().line, Some(1));
    assert!(critical.message.contains("cross-spawn"));
    assert_eq!(by_rule("KSV001").severity, Severity::Medium);
    assert_eq!(by_rule("CVE-2023-26136").severity, Severity::Critical);
    // A ticket each, triaged by a bot.
    for f in &r.findings {
        let v = wait_terminal(&rig.controller, f.ticket.unwrap()).await;
        assert_eq!(v.state, TicketState::Succeeded);
    }
    // Trivy's next run without the KSV001 result resolves it (resolve
    // after 1); Oshal's own scan does not touch Trivy's findings.
    let mut next: serde_json::Value = serde_json::from_slice(trivy).unwrap();
    next["runs"][0]["results"]
        .as_array_mut()
        .unwrap()
        .retain(|x| x["ruleId"] != "KSV001");
    rig.center.scan().await.unwrap();
    let again = rig
        .center
        .import_sarif(&serde_json::to_vec(&next).unwrap())
        .await
        .unwrap();
    assert_eq!((again[0].resolved, again[0].new), (1, 0));
    assert_eq!(again[0].findings.len(), 2);

    // Bad logs name the field at fault.
    for (body, field) in [
        (&b"not json"[..], "body"),
        (br#"{"version":"2.0.0","runs":[]}"#, "version"),
        (br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":""}},"results":[]}]}"#, "runs[0].tool.driver.name"),
        (br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"message":{"text":"m"}}]}]}"#, "runs[0].results[0].ruleId"),
        (br#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x"}},"results":[{"ruleId":"r","level":"fatal","message":{"text":"m"}}]}]}"#, "runs[0].results[0].level"),
    ] {
        match rig.center.import_sarif(body).await {
            Err(SecurityError::Invalid { field: got, reason }) => {
                assert_eq!(got, field, "{reason}")
            }
            other => panic!("{}: {other:?}", String::from_utf8_lossy(body)),
        }
    }
    rig.controller.shutdown().await;
}

#[test]
fn fingerprints_ignore_lines_and_separate_their_parts() {
    // The same secret moved two lines down is the same finding, at a new line.
    let rules = secrets::SecretRules::shipped();
    let place = secrets::Place::File("/etc/app.conf".into());
    let seen = |text: &str| {
        let mut run = CheckRun::new("secrets.exposed");
        secrets::report(&rules, &mut run, &place, text);
        let o = run.observations.remove(0);
        (
            fingerprint(OSHAL, &o.rule, &o.object),
            o.location.unwrap().line,
        )
    };
    let (before, line_before) = seen(&format!("{AWS}\n"));
    let (after, line_after) = seen(&format!("# moved\n\n{AWS}\n"));
    assert_eq!(before, after);
    assert_eq!((line_before, line_after), (Some(1), Some(3)));
    // Length-prefixed parts: moving a character between parts changes it.
    assert_ne!(
        fingerprint("oshal", "ab", "c"),
        fingerprint("oshal", "a", "bc")
    );
    assert_ne!(
        fingerprint("trivy", "r", "o"),
        fingerprint("oshal", "r", "o")
    );
}

#[test]
fn stored_names_are_the_names_serde_sends() {
    fn agree<T: serde::Serialize + Copy>(all: &[T], name: impl Fn(T) -> &'static str) {
        for v in all {
            assert_eq!(serde_json::to_value(v).unwrap(), name(*v));
        }
    }
    agree(Severity::all(), Severity::as_str);
    agree(FindingState::all(), FindingState::as_str);
    agree(CheckStatus::all(), CheckStatus::as_str);
    agree(ControlStatus::all(), ControlStatus::as_str);
    // Every enum named by the derive (oshal_kernel::name) says what serde says.
    use crate::connector::manifest::{Category, Method};
    use crate::connector::store::{AuditKind, EffectState};
    use crate::ticket::{TicketState, TransitionKind};
    agree(TicketState::all(), TicketState::as_str);
    agree(TransitionKind::all(), TransitionKind::as_str);
    agree(AuditKind::all(), AuditKind::as_str);
    agree(EffectState::all(), EffectState::as_str);
    agree(Method::all(), Method::as_str);
    agree(Category::all(), Category::as_str);
    assert_eq!(
        ControlStatus::parse("not_applicable"),
        Some(ControlStatus::NotApplicable)
    );
    assert_eq!(Severity::parse("dire"), None);
}

/// A database the scan cannot reach proves nothing: each of its controls is
/// failing with one finding (not one per check), and what the database
/// checks found before stays open however many scans go by.
#[tokio::test]
async fn an_unreachable_database_fails_its_controls_with_one_finding_each() {
    let rig = Rig::new(1, async |_| {}).await;
    let case = PgCase::new("outage").await;
    case.with_two_tenants().await;
    case.exec("ALTER TABLE {s}.tickets DISABLE ROW LEVEL SECURITY")
        .await;
    let reachable = SecurityCenter::open(
        rig.center.inner.db.pool().clone(),
        rig.controller.clone(),
        SecurityConfig {
            postgres: Some(case.target()),
            resolve_after: 1,
            ..SecurityConfig::default()
        },
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let before = reachable.scan().await.unwrap();
    assert_eq!(before.findings.len(), 1, "{:#?}", before.findings);
    let rls_off = before.findings[0].clone();
    assert_eq!(rls_off.rule, "pg.rls-enabled");
    case.drop().await;

    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://nobody@127.0.0.1:1/none")
        .unwrap();
    let config = SecurityConfig {
        postgres: Some(postgres::PgTarget {
            pool,
            schema: "oshal".into(),
            app_role: "oshal_app".into(),
            tenant_tables: Vec::new(),
        }),
        ..SecurityConfig::default()
    };
    let store_pool = rig.center.inner.db.pool().clone();
    let center = SecurityCenter::open(
        store_pool,
        rig.controller.clone(),
        config,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let report = center.scan().await.unwrap();
    let mut objects: Vec<&str> = report
        .findings
        .iter()
        .filter(|f| f.rule == checks::CHECK_ERROR)
        .map(|f| f.object.as_str())
        .collect();
    objects.sort();
    assert_eq!(
        objects,
        ["control least-privilege", "control tenant-isolation"]
    );
    // Resolve-after is 1 here, yet the finding the outage hides stays open.
    center.scan().await.unwrap();
    let kept = center
        .findings(&FindingQuery::default())
        .await
        .unwrap()
        .into_iter()
        .find(|f| f.fingerprint == rls_off.fingerprint)
        .unwrap();
    assert_eq!((kept.state, kept.clean_scans), (FindingState::Open, 0));
    let controls = center.controls().await.unwrap();
    let isolation = controls
        .iter()
        .find(|c| c.id == "tenant-isolation")
        .unwrap();
    assert_eq!(isolation.status, ControlStatus::Failing, "{isolation:#?}");
    assert_eq!(isolation.open_findings, 2, "the outage and the table");
    let privilege = controls.iter().find(|c| c.id == "least-privilege").unwrap();
    assert_eq!(privilege.status, ControlStatus::Failing, "{privilege:#?}");
    assert_eq!(privilege.open_findings, 1);
    assert!(
        privilege.summary.contains("could not run"),
        "{}",
        privilege.summary
    );
    rig.controller.shutdown().await;
}

/// A suppression lasts as long as it says: once it expires, a finding still
/// there is open again (with its ticket), and one gone is resolved.
#[tokio::test]
async fn a_suppression_expires_and_the_finding_is_open_again() {
    let rig = Rig::new(2, async |_| {}).await;
    rig.write(
        "config/app.env",
        &format!("api_key = \"{OPENAI}\"\n"),
        0o600,
    );
    let clock = crate::clock::ManualClock::at(crate::clock::SystemClock.now_ms());
    let config = SecurityConfig {
        scan_paths: vec![rig.path("config")],
        ..SecurityConfig::default()
    };
    let center = SecurityCenter::open(
        rig.center.inner.db.pool().clone(),
        rig.controller.clone(),
        config,
        Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let first = center.scan().await.unwrap();
    let f = &first.findings[0];
    let request = SuppressRequest {
        reason: "accepted until the vault migration".into(),
        days: 1,
    };
    center.suppress(&f.id, &request, "operator").await.unwrap();
    clock.advance(23 * 3_600_000);
    let still = center.scan().await.unwrap();
    assert_eq!(still.findings[0].state, FindingState::Suppressed);
    clock.advance(2 * 3_600_000);
    let open = center.scan().await.unwrap();
    let f2 = &open.findings[0];
    assert_eq!(f2.state, FindingState::Open);
    assert_eq!(f2.suppression, None);
    assert_eq!(f2.ticket, f.ticket, "the same round, the same ticket");
    assert_eq!(open.tickets_filed, 0);
    rig.controller.shutdown().await;
}
