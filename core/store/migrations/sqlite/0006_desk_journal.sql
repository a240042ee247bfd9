-- The trading desk's journal (see store/journal.rs): what a paper session
-- was opened with and every operator action on it, in order. With the
-- session's signal tickets (found again by their idempotency keys) it is
-- all a restarted controller needs to rebuild the desk, fill for fill.
-- Append-only: no UPDATE, no DELETE.
CREATE TABLE desk_journal (
    session TEXT NOT NULL,
    seq     INTEGER NOT NULL CHECK (seq >= 0),
    tenant  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    body    TEXT NOT NULL,
    at_ms   INTEGER NOT NULL,
    PRIMARY KEY (session, seq)
);
