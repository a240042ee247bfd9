-- Grants bound to a ticket: an approval mints a grant for one
-- investigation's ticket, held by whichever bot runs it (`bot` NULL), and
-- it may expire. A grant names a bot, a ticket or both.
--
-- SQLite cannot drop a NOT NULL, so the table is rebuilt: created anew,
-- filled from the old one, which is dropped, and renamed into its place
-- (nothing references it: no view, trigger or foreign key).

CREATE TABLE grants_new (
    id              TEXT PRIMARY KEY,    -- UUIDv7
    bot             TEXT,                -- NULL: whichever bot runs `ticket`
    ticket          TEXT,                -- NULL: every ticket of `bot`
    connector       TEXT NOT NULL,
    operations      TEXT NOT NULL,       -- JSON array of operation ids
    scopes          TEXT NOT NULL,       -- JSON array
    conditions      TEXT NOT NULL,       -- JSON array of {param, max}
    rate_per_minute INTEGER NOT NULL,
    budget_calls    INTEGER NOT NULL,
    calls_used      INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,             -- NULL: until revoked
    revoked_at      INTEGER,
    CHECK (calls_used <= budget_calls),
    CHECK (bot IS NOT NULL OR ticket IS NOT NULL)
) WITHOUT ROWID;

INSERT INTO grants_new (id, bot, connector, operations, scopes, conditions, rate_per_minute, budget_calls, calls_used, created_at, revoked_at)
SELECT id, bot, connector, operations, scopes, conditions, rate_per_minute, budget_calls, calls_used, created_at, revoked_at
FROM grants;

DROP TABLE grants;
ALTER TABLE grants_new RENAME TO grants;

CREATE INDEX grants_live ON grants (bot, connector) WHERE revoked_at IS NULL;
CREATE INDEX grants_ticket ON grants (ticket, connector) WHERE revoked_at IS NULL AND ticket IS NOT NULL;
