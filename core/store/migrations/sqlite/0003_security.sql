-- The Security Center: findings (one row per fingerprint: tool + rule +
-- object, never a line number), the last run of every check and control,
-- and a row per scan. Findings are triaged into tickets: `ticket` is the
-- current one, `ticket_generation` the `reopened` count it was filed for
-- (a finding whose counts differ still needs its ticket, which is how a
-- crash between the two writes is repaired without a second ticket).

CREATE TABLE security_findings (
    fingerprint       TEXT PRIMARY KEY,   -- sha256 hex
    id                TEXT NOT NULL UNIQUE,
    source            TEXT NOT NULL,      -- 'oshal' or the imported tool's name
    rule              TEXT NOT NULL,
    title             TEXT NOT NULL,
    control           TEXT,
    severity          TEXT NOT NULL,
    object            TEXT NOT NULL,
    message           TEXT NOT NULL,
    location          TEXT,               -- JSON {uri, line}
    state             TEXT NOT NULL CHECK (state IN ('open', 'suppressed', 'resolved')),
    first_seen        INTEGER NOT NULL,
    last_seen         INTEGER NOT NULL,
    resolved_at       INTEGER,
    clean_scans       INTEGER NOT NULL DEFAULT 0,
    reopened          INTEGER NOT NULL DEFAULT 0,
    ticket            TEXT,
    ticket_generation INTEGER,
    previous_tickets  TEXT NOT NULL DEFAULT '[]',  -- JSON array, oldest first
    suppress_reason   TEXT,
    suppress_by       TEXT,
    suppressed_at     INTEGER,
    suppress_until    INTEGER
) WITHOUT ROWID;
CREATE INDEX security_findings_source ON security_findings (source, state);

CREATE TABLE security_checks (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,            -- passed, failed, skipped, error
    evidence    TEXT NOT NULL,
    found       INTEGER NOT NULL,
    last_run    INTEGER NOT NULL,
    last_passed INTEGER
) WITHOUT ROWID;

CREATE TABLE security_controls (
    id          TEXT PRIMARY KEY,
    status      TEXT NOT NULL,            -- proven, failing, not_applicable
    summary     TEXT NOT NULL,
    last_run    INTEGER NOT NULL,
    last_passed INTEGER
) WITHOUT ROWID;

CREATE TABLE security_scans (
    id          TEXT PRIMARY KEY,         -- UUIDv7
    source      TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    seen        INTEGER NOT NULL,
    new         INTEGER NOT NULL,
    reopened    INTEGER NOT NULL,
    resolved    INTEGER NOT NULL
) WITHOUT ROWID;
