-- Connectors: imported catalog entries and their approval, grants (the auth
-- gate's policy), the audit trail of every decision and credential read, and
-- the effect ledger of every write sent to an outside system.
-- Curated (signed) connectors are not stored: they are verified from their
-- files at every start.

CREATE TABLE connector_catalog (
    id           TEXT PRIMARY KEY,
    manifest     TEXT NOT NULL,          -- JSON, validated
    imported_at  INTEGER NOT NULL,
    approved_by  TEXT,                   -- NULL: disabled
    approved_at  INTEGER
) WITHOUT ROWID;

CREATE TABLE grants (
    id              TEXT PRIMARY KEY,    -- UUIDv7
    bot             TEXT NOT NULL,
    connector       TEXT NOT NULL,
    operations      TEXT NOT NULL,       -- JSON array of operation ids
    scopes          TEXT NOT NULL,       -- JSON array
    conditions      TEXT NOT NULL,       -- JSON array of {param, max}
    rate_per_minute INTEGER NOT NULL,
    budget_calls    INTEGER NOT NULL,
    calls_used      INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    CHECK (calls_used <= budget_calls)
) WITHOUT ROWID;
CREATE INDEX grants_live ON grants (bot, connector) WHERE revoked_at IS NULL;

CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms      INTEGER NOT NULL,
    kind       TEXT NOT NULL,            -- decision, credential_read, refresh, revoke, grant, ungrant, approve, import
    allowed    INTEGER,                  -- decisions: 1 allow, 0 deny
    actor      TEXT,                     -- the bot, or the operator
    ticket     TEXT,
    attempt    INTEGER,
    connector  TEXT,
    operation  TEXT,
    token_id   TEXT,
    grant_id   TEXT,
    reason     TEXT NOT NULL
);
CREATE INDEX audit_ticket ON audit (ticket);

CREATE TABLE effects (
    key         TEXT PRIMARY KEY,        -- the idempotency key sent
    ticket      TEXT NOT NULL,
    attempt     INTEGER NOT NULL,        -- the attempt that last touched it
    connector   TEXT NOT NULL,
    operation   TEXT NOT NULL,
    token_id    TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('in_flight', 'done', 'failed', 'unknown')),
    status      INTEGER,                 -- the outside system's HTTP status
    response    TEXT,                    -- JSON
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX effects_ticket ON effects (ticket);
