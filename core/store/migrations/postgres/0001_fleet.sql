-- The fleet store: tenants, tickets, their transition events, and the ledger.
-- Run as the schema's owner role (see store/postgres.rs, `setup`), with the
-- schema first on the search_path. Times are unix milliseconds; money is
-- integer nano-dollars.
--
-- Isolation is the database's job: every table that holds a tenant's data
-- has row-level security ENABLEd and FORCEd (so even the owner is filtered),
-- with one policy for reads (USING) and writes (WITH CHECK) on the tenant set
-- for the transaction by `set_config('app.tenant_id', $1, true)`. NULLIF
-- matters: once set and reset, the setting reads as '' rather than NULL, and
-- ''::uuid would be an error instead of "no rows".
--
-- `tenants` is the directory of tenants (names, budgets), not a tenant's
-- data: the controller reads it to know which tenants exist.

CREATE TABLE tenants (
    id            uuid PRIMARY KEY,       -- UUIDv5 of the name
    name          text NOT NULL UNIQUE,
    budget_nusd   bigint,                 -- NULL: no limit
    created_at_ms bigint NOT NULL
);

CREATE TABLE tickets (
    id              uuid PRIMARY KEY,     -- UUIDv7: sorts by creation
    tenant_id       uuid NOT NULL REFERENCES tenants (id),
    kind            text NOT NULL,
    payload         jsonb NOT NULL,
    priority        smallint NOT NULL,
    skill           text NOT NULL,
    idempotency_key text,
    state           text NOT NULL,
    attempts        integer NOT NULL,
    max_attempts    integer NOT NULL,
    transitions     integer NOT NULL,     -- events so far; the next event's seq
    bot_id          text,
    parent_id       uuid,
    correlation_id  uuid NOT NULL,
    causation_id    uuid,
    not_before_ms   bigint,
    result          jsonb,
    error           text,
    created_at_ms   bigint NOT NULL,
    updated_at_ms   bigint NOT NULL
);

CREATE UNIQUE INDEX tickets_idempotency ON tickets (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX tickets_tenant_state ON tickets (tenant_id, state, id);
CREATE INDEX tickets_tenant_id ON tickets (tenant_id, id);

CREATE TABLE ticket_events (
    tenant_id  uuid NOT NULL,
    ticket_id  uuid NOT NULL,
    seq        integer NOT NULL,          -- 0 for the creating event
    at_ms      bigint NOT NULL,
    from_state text,                      -- NULL for the creating event
    to_state   text NOT NULL,
    attempt    integer NOT NULL,
    bot_id     text,
    reason     text NOT NULL,
    PRIMARY KEY (ticket_id, seq)
);

-- One row per finished attempt, priced once: the primary key is what makes a
-- retry or a duplicate delivery unable to charge twice.
CREATE TABLE ledger (
    tenant_id     uuid NOT NULL,
    ticket_id     uuid NOT NULL,
    attempt       integer NOT NULL,
    bot_id        text NOT NULL,
    model         text NOT NULL,
    input_tokens  bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cost_nusd     bigint NOT NULL,
    unpriced      boolean NOT NULL,
    price_version text NOT NULL,
    at_ms         bigint NOT NULL,
    PRIMARY KEY (ticket_id, attempt)
);
CREATE INDEX ledger_tenant ON ledger (tenant_id);

ALTER TABLE tickets ENABLE ROW LEVEL SECURITY;
ALTER TABLE tickets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tickets
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE ticket_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE ticket_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ticket_events
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

ALTER TABLE ledger ENABLE ROW LEVEL SECURITY;
ALTER TABLE ledger FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON ledger
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

-- Least privilege. The controller's role may read and write tickets and
-- tenants, only append events and ledger rows (no UPDATE, no DELETE
-- anywhere), and owns nothing. Dashboards read.
GRANT SELECT, INSERT, UPDATE ON tenants, tickets TO oshal_app;
GRANT SELECT, INSERT ON ticket_events, ledger TO oshal_app;
GRANT SELECT ON tenants, tickets, ticket_events, ledger TO oshal_readonly;
