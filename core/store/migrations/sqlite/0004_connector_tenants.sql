-- A tool call's audit rows and its writes carry the tenant of the ticket
-- that made it (operator actions have none), as the fleet's PostgreSQL
-- tables do, where row-level security keys on it.
ALTER TABLE audit ADD COLUMN tenant TEXT;
ALTER TABLE effects ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
