-- The trading desk's journal (see store/journal.rs): what a paper session
-- was opened with and every operator action on it, in order; a tenant's
-- data, so under row-level security like its tickets. Append-only: the
-- controller's role may read and insert, nothing else.
CREATE TABLE desk_journal (
    tenant_id uuid NOT NULL,
    session   text NOT NULL,
    seq       integer NOT NULL CHECK (seq >= 0),
    kind      text NOT NULL,
    body      text NOT NULL,
    at_ms     bigint NOT NULL,
    PRIMARY KEY (session, seq)
);
CREATE INDEX desk_journal_tenant ON desk_journal (tenant_id);

ALTER TABLE desk_journal ENABLE ROW LEVEL SECURITY;
ALTER TABLE desk_journal FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON desk_journal
    USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

GRANT SELECT, INSERT ON desk_journal TO oshal_app;
GRANT SELECT ON desk_journal TO oshal_readonly;
