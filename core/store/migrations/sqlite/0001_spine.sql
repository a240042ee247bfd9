-- The spine: tenants, tickets, their transition events, and the cost ledger.
-- Times are unix milliseconds; money is integer nano-dollars.

CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    budget_nusd   INTEGER,               -- NULL: no limit
    created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE tickets (
    id              TEXT PRIMARY KEY,    -- UUIDv7: sorts by creation
    tenant_id       TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,       -- JSON
    priority        INTEGER NOT NULL,
    skill           TEXT NOT NULL,
    idempotency_key TEXT,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    max_attempts    INTEGER NOT NULL,
    transitions     INTEGER NOT NULL,    -- events so far; the next event's seq
    bot_id          TEXT,
    parent_id       TEXT,
    correlation_id  TEXT NOT NULL,
    causation_id    TEXT,
    not_before_ms   INTEGER,
    result          TEXT,                -- JSON
    error           TEXT,
    created_at_ms   INTEGER NOT NULL,
    updated_at_ms   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE UNIQUE INDEX tickets_idempotency ON tickets (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX tickets_state ON tickets (state, id);

-- Keyed by (ticket, seq): one B-tree, and a ticket's history is one range.
-- An event's correlation and causation ids are its ticket's (not repeated).
CREATE TABLE ticket_events (
    ticket_id      TEXT NOT NULL,
    seq            INTEGER NOT NULL,     -- 0 for the creating event
    at_ms          INTEGER NOT NULL,
    from_state     TEXT,                 -- NULL for the creating event
    to_state       TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    bot_id         TEXT,
    reason         TEXT NOT NULL,
    PRIMARY KEY (ticket_id, seq)
) WITHOUT ROWID;

-- One row per finished attempt, priced once. The primary key is what makes a
-- retry or a duplicate delivery unable to charge twice.
CREATE TABLE ledger (
    ticket_id     TEXT NOT NULL,
    attempt       INTEGER NOT NULL,
    tenant_id     TEXT NOT NULL,
    bot_id        TEXT NOT NULL,
    model         TEXT NOT NULL,
    input_tokens  INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_nusd     INTEGER NOT NULL,
    unpriced      INTEGER NOT NULL,
    price_version TEXT NOT NULL,
    at_ms         INTEGER NOT NULL,
    PRIMARY KEY (ticket_id, attempt)
) WITHOUT ROWID;
