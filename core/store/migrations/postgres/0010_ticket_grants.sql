-- Grants bound to a ticket: an approval mints a grant for one
-- investigation's ticket, held by whichever bot runs it (`bot` NULL), and
-- it may expire. A grant names a bot, a ticket or both. The table stays
-- the operator's configuration (no tenant, no policy); its privileges are
-- kept by ALTER TABLE.

ALTER TABLE grants ALTER COLUMN bot DROP NOT NULL;
ALTER TABLE grants ADD COLUMN ticket_id uuid;          -- NULL: every ticket of `bot`
ALTER TABLE grants ADD COLUMN expires_at_ms bigint;    -- NULL: until revoked
ALTER TABLE grants ADD CONSTRAINT grants_bound CHECK (bot IS NOT NULL OR ticket_id IS NOT NULL);
CREATE INDEX grants_ticket ON grants (ticket_id, connector) WHERE revoked_at_ms IS NULL AND ticket_id IS NOT NULL;
