//! The catalog: every preventive control and every check that proves it.
//!
//! A control is something that stops a bad action before it happens (tenant
//! row-level security, least-privilege roles, brokered credentials, …); each
//! is bound to the checks that show, live, that it holds. A check's id is
//! the rule id its findings carry (and the SARIF `ruleId`).

use super::Severity;

/// A preventive control.
#[derive(Debug, Clone, Copy)]
pub struct ControlInfo {
    pub id: &'static str,
    pub title: &'static str,
    /// What it prevents.
    pub prevents: &'static str,
}

/// A detective check.
#[derive(Debug, Clone, Copy)]
pub struct CheckInfo {
    pub id: &'static str,
    pub title: &'static str,
    pub severity: Severity,
    /// The control whose failure it detects.
    pub control: &'static str,
    pub rationale: &'static str,
    pub remediation: &'static str,
}

pub const CONTROLS: &[ControlInfo] = &[
    ControlInfo {
        id: "tenant-isolation",
        title: "Tenant row-level security",
        prevents: "one tenant reading or writing another tenant's tickets, events or ledger",
    },
    ControlInfo {
        id: "least-privilege",
        title: "Least-privilege database roles",
        prevents: "the controller's role bypassing isolation, altering tables or escalating",
    },
    ControlInfo {
        id: "secret-hygiene",
        title: "No credential in the clear",
        prevents: "credentials at rest in config files, logs, events or results",
    },
    ControlInfo {
        id: "connector-trust",
        title: "Trusted connectors, granted scopes",
        prevents: "a bot reaching an outside system through an untrusted connector or beyond its grant",
    },
    ControlInfo {
        id: "authenticated-surfaces",
        title: "Authenticated surfaces",
        prevents: "anyone on the network driving the controller without the API token",
    },
    ControlInfo {
        id: "fail-closed",
        title: "Fail-closed execution",
        prevents: "a call going through when no rule allows it or a policy cannot be evaluated",
    },
];

/// The check every error while checking becomes: a check that cannot run
/// proves nothing, so its control is not shown as holding.
pub const CHECK_ERROR: &str = "scan.check-error";

pub const CHECKS: &[CheckInfo] = &[
    // ---- tenant isolation (PostgreSQL) ----
    CheckInfo {
        id: "pg.rls-enabled",
        title: "Row-level security is enabled on every tenant table",
        severity: Severity::Critical,
        control: "tenant-isolation",
        rationale: "Without ENABLE ROW LEVEL SECURITY every role that can read the table reads every tenant's rows.",
        remediation: "ALTER TABLE <table> ENABLE ROW LEVEL SECURITY;",
    },
    CheckInfo {
        id: "pg.rls-forced",
        title: "Row-level security is forced on every tenant table",
        severity: Severity::High,
        control: "tenant-isolation",
        rationale: "Unless FORCEd, the table's owner is exempt from its policies; a migration or a mistaken connection as the owner sees everything.",
        remediation: "ALTER TABLE <table> FORCE ROW LEVEL SECURITY;",
    },
    CheckInfo {
        id: "pg.policy-present",
        title: "Every tenant table has a permissive policy",
        severity: Severity::Medium,
        control: "tenant-isolation",
        rationale: "With row-level security on and no permissive policy a table denies everything: isolation holds but the platform breaks, and someone will 'fix' it by turning security off.",
        remediation: "CREATE POLICY tenant_isolation ON <table> USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid) WITH CHECK (…same…);",
    },
    CheckInfo {
        id: "pg.policy-tenant-bound",
        title: "No permissive policy is always true or ignores the tenant",
        severity: Severity::Critical,
        control: "tenant-isolation",
        rationale: "Permissive policies are OR-ed: one that does not compare tenant_id with the session's tenant opens the table to every tenant.",
        remediation: "DROP POLICY <policy> ON <table>; keep only policies that compare tenant_id with current_setting('app.tenant_id').",
    },
    CheckInfo {
        id: "pg.policy-nullif",
        title: "Policies read the tenant through NULLIF",
        severity: Severity::Medium,
        control: "tenant-isolation",
        rationale: "Once set and reset, current_setting reads '' rather than NULL; without NULLIF('' → NULL) a COALESCE or a bare cast either errors or matches a default tenant instead of matching nothing.",
        remediation: "Use tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid in USING and WITH CHECK.",
    },
    CheckInfo {
        id: "pg.canary-cross-tenant",
        title: "Canary: the application role reads no other tenant's rows",
        severity: Severity::Critical,
        control: "tenant-isolation",
        rationale: "The live proof: as the application role, scoped to one tenant (or to a tenant that owns nothing), a count of the rows that are not that tenant's must be 0.",
        remediation: "Fix the table's policies (see the other tenant-isolation findings) and rerun the scan.",
    },
    CheckInfo {
        id: "pg.canary-no-tenant",
        title: "Canary: with no tenant set, the application role reads nothing",
        severity: Severity::Critical,
        control: "tenant-isolation",
        rationale: "A session that forgot to set its tenant must see 0 rows, not all of them.",
        remediation: "Make every policy compare with nullif(current_setting('app.tenant_id', true), '')::uuid, which is NULL when unset and matches no row.",
    },
    // ---- least privilege (PostgreSQL) ----
    CheckInfo {
        id: "pg.app-role-superuser",
        title: "The application role is not a superuser",
        severity: Severity::Critical,
        control: "least-privilege",
        rationale: "A superuser bypasses row-level security and every grant.",
        remediation: "ALTER ROLE <app role> NOSUPERUSER;",
    },
    CheckInfo {
        id: "pg.app-role-bypassrls",
        title: "The application role cannot bypass row-level security",
        severity: Severity::Critical,
        control: "least-privilege",
        rationale: "BYPASSRLS switches every policy off for the role.",
        remediation: "ALTER ROLE <app role> NOBYPASSRLS;",
    },
    CheckInfo {
        id: "pg.app-role-owns",
        title: "The application role owns nothing and cannot become an owner",
        severity: Severity::High,
        control: "least-privilege",
        rationale: "An owner may disable row-level security, drop policies and alter tables; the role the controller connects as needs DML only.",
        remediation: "ALTER TABLE <table> OWNER TO oshal_owner; REVOKE <owner role> FROM <app role>;",
    },
    CheckInfo {
        id: "pg.definer-search-path",
        title: "SECURITY DEFINER functions pin their search_path",
        severity: Severity::High,
        control: "least-privilege",
        rationale: "A definer function runs with its owner's rights; with an unpinned search_path a caller can shadow the objects it uses and run code as the owner.",
        remediation: "ALTER FUNCTION <function> SET search_path = <schema>, pg_temp;",
    },
    // ---- secrets ----
    CheckInfo {
        id: "secrets.exposed",
        title: "No credential in config files, environment dumps, logs, events or stored results",
        severity: Severity::High,
        control: "secret-hygiene",
        rationale: "A credential written anywhere but the broker's backend can be read by whoever reads that file, log or ticket, and outlives its rotation.",
        remediation: "Rotate the credential, remove it from where it was found, and give it to the broker (oshal connectors credential).",
    },
    CheckInfo {
        id: "secrets.token-file-permissions",
        title: "No token file is readable by every user",
        severity: Severity::High,
        control: "secret-hygiene",
        rationale: "A world-readable token file hands the token to every account on the machine.",
        remediation: "chmod 600 <file>",
    },
    // ---- connectors ----
    CheckInfo {
        id: "connectors.untrusted-enabled",
        title: "Every enabled connector is signed by a trusted publisher or approved",
        severity: Severity::High,
        control: "connector-trust",
        rationale: "An enabled connector is code-free but not harmless: it decides where a bot's calls, and the credentials the broker attaches, are sent.",
        remediation: "Disable the connector, or re-sign it with a trusted key, or approve the catalog entry after review.",
    },
    CheckInfo {
        id: "connectors.grant-exceeds-scopes",
        title: "No grant is broader than its connector",
        severity: Severity::Medium,
        control: "connector-trust",
        rationale: "A grant naming scopes or operations the connector does not declare means the connector changed under it; the grant no longer says what it allows.",
        remediation: "Revoke the grant and grant again against the connector as it is now.",
    },
    CheckInfo {
        id: "connectors.grant-orphaned",
        title: "No grant names a bot that no longer exists",
        severity: Severity::Low,
        control: "connector-trust",
        rationale: "A grant to a departed bot is dormant access: the next bot given that id inherits it.",
        remediation: "Revoke the grant (oshal connectors revoke <grant>).",
    },
    // ---- surfaces ----
    CheckInfo {
        id: "surfaces.no-token",
        title: "Every API listener refuses requests without the token",
        severity: Severity::Critical,
        control: "authenticated-surfaces",
        rationale: "The probe calls the listener with no token and with a wrong one; anything but 401 means anyone who can reach it drives the fleet.",
        remediation: "Serve the API only through oshal's router, which requires the bearer token on every route but health.",
    },
    CheckInfo {
        id: "surfaces.plaintext-remote",
        title: "No listener on a non-loopback address without TLS",
        severity: Severity::High,
        control: "authenticated-surfaces",
        rationale: "The bearer token travels in every request: off loopback, without TLS, anyone on the path reads it.",
        remediation: "Listen on 127.0.0.1 and reach the controller over the Tailscale mesh, or put a TLS terminator in front.",
    },
    // ---- fail closed ----
    CheckInfo {
        id: "probe.gate-denies",
        title: "The auth gate denies a call no grant allows",
        severity: Severity::Critical,
        control: "fail-closed",
        rationale: "The probe asks the gate for a call by a bot that holds no grant; only a deny proves the default is deny.",
        remediation: "Find the grant or code path that allowed the probe; the gate must deny by default and on any evaluation error.",
    },
    CheckInfo {
        id: "probe.broker-refuses",
        title: "The token broker refuses forged and misbound tokens",
        severity: Severity::Critical,
        control: "fail-closed",
        rationale: "The probe presents a token the broker never issued, and a real one for another call; either must be refused before any credential is read.",
        remediation: "The broker must look tokens up by hash and check their binding before touching the backend.",
    },
    CheckInfo {
        id: CHECK_ERROR,
        title: "Every check could run",
        severity: Severity::Medium,
        control: "",
        rationale: "A check that cannot run proves nothing: its control is not shown as holding until it runs again.",
        remediation: "Read the error in the finding's message; fix access or configuration so the check can run.",
    },
];

/// The check with this id.
pub fn check(id: &str) -> Option<&'static CheckInfo> {
    CHECKS.iter().find(|c| c.id == id)
}

/// The checks that prove `control`.
pub fn checks_of(control: &str) -> impl Iterator<Item = &'static CheckInfo> {
    CHECKS.iter().filter(move |c| c.control == control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_names_a_control_and_ids_are_unique() {
        let mut ids = std::collections::BTreeSet::new();
        for c in CHECKS {
            assert!(ids.insert(c.id), "duplicate check {}", c.id);
            assert!(
                c.id == CHECK_ERROR || CONTROLS.iter().any(|k| k.id == c.control),
                "{} names no control",
                c.id
            );
        }
        for k in CONTROLS {
            assert!(checks_of(k.id).count() > 0, "{} has no check", k.id);
        }
    }
}
