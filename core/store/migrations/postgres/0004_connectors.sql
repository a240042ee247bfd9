-- Connectors in a fleet: the catalog and its approvals, grants (the auth
-- gate's policy) and their spent budgets, the audit trail and the effect
-- ledger, as local mode keeps them in SQLite.
--
-- The catalog, grants and operator actions are the operator's configuration
-- (like `tenants`), not a tenant's data: no tenant, no policy. A tool call's
-- audit rows and writes are the tenant's: `connector_audit` and `effects`
-- carry the ticket's tenant under the same forced row-level security as
-- tickets. Both audit tables draw from one sequence, so the trail reads in
-- one order.

CREATE TABLE connector_catalog (
    id             text PRIMARY KEY,
    manifest       jsonb NOT NULL,        -- validated before it is stored
    imported_at_ms bigint NOT NULL,
    approved_by    text,                  -- NULL: disabled
    approved_at_ms bigint
);

CREATE TABLE grants (
    id              text PRIMARY KEY,     -- UUIDv7
    bot             text NOT NULL,
    connector       text NOT NULL,
    operations      jsonb NOT NULL,       -- array of operation ids
    scopes          jsonb NOT NULL,       -- array
    conditions      jsonb NOT NULL,       -- array of {param, max}
    rate_per_minute integer NOT NULL,
    budget_calls    integer NOT NULL,
    calls_used      integer NOT NULL DEFAULT 0,
    created_at_ms   bigint NOT NULL,
    revoked_at_ms   bigint,
    CHECK (calls_used <= budget_calls)
);
CREATE INDEX grants_live ON grants (bot, connector) WHERE revoked_at_ms IS NULL;

CREATE SEQUENCE audit_seq;

-- Grants, revocations, imports, approvals: who did what to the policy.
CREATE TABLE operator_audit (
    seq       bigint PRIMARY KEY DEFAULT nextval('audit_seq'),
    at_ms     bigint NOT NULL,
    kind      text NOT NULL,
    allowed   boolean,
    actor     text,
    ticket_id uuid,
    attempt   integer,
    connector text,
    operation text,
    token_id  text,
    grant_id  text,
    reason    text NOT NULL
);

-- Each tool call's decisions, credential reads, refreshes and revocations.
CREATE TABLE connector_audit (
    tenant_id uuid NOT NULL,
    seq       bigint PRIMARY KEY DEFAULT nextval('audit_seq'),
    at_ms     bigint NOT NULL,
    kind      text NOT NULL,
    allowed   boolean,
    actor     text,
    ticket_id uuid,
    attempt   integer,
    connector text,
    operation text,
    token_id  text,
    grant_id  text,
    reason    text NOT NULL
);
CREATE INDEX connector_audit_ticket ON connector_audit (tenant_id, ticket_id);

CREATE TABLE effects (
    key           text PRIMARY KEY,       -- the idempotency key sent
    tenant_id     uuid NOT NULL,
    ticket_id     uuid NOT NULL,
    attempt       integer NOT NULL,       -- the attempt that last touched it
    connector     text NOT NULL,
    operation     text NOT NULL,
    token_id      text NOT NULL,
    state         text NOT NULL CHECK (state IN ('in_flight', 'done', 'failed', 'unknown')),
    status        integer,
    response      jsonb,
    created_at_ms bigint NOT NULL,
    updated_at_ms bigint NOT NULL
);
CREATE INDEX effects_ticket ON effects (tenant_id, ticket_id);

ALTER TABLE connector_audit ENABLE ROW LEVEL SECURITY;
ALTER TABLE connector_audit FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON connector_audit
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE effects ENABLE ROW LEVEL SECURITY;
ALTER TABLE effects FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON effects
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

-- The audit is append-only for the controller: no UPDATE, no DELETE.
GRANT SELECT, INSERT, UPDATE ON connector_catalog, grants, effects TO oshal_app;
GRANT SELECT, INSERT ON operator_audit, connector_audit TO oshal_app;
GRANT USAGE ON SEQUENCE audit_seq TO oshal_app;
GRANT SELECT ON connector_catalog, grants, operator_audit, connector_audit, effects TO oshal_readonly;
