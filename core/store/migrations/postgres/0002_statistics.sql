-- Planner statistics the controller may refresh.
--
-- Every statement the controller runs carries the tenant policy's qual
-- `tenant_id = <setting>`. On a table never ANALYZEd, PostgreSQL guesses that
-- qual keeps 0.5% of the rows, so a batched `UPDATE … FROM unnest(…)` hashes
-- the tenant's whole table instead of probing the primary key: every commit
-- costs O(table). Autovacuum fixes the estimate within a minute or so; a
-- controller that has just created a busy table cannot wait that long, and
-- only the owner may ANALYZE. This function lets oshal_app ask for it and
-- nothing more: SECURITY DEFINER with a pinned search_path, EXECUTE granted
-- to oshal_app alone, one refresher at a time per schema.

CREATE FUNCTION refresh_statistics() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('oshal.refresh_statistics.' || current_schema())) THEN
        RETURN false;
    END IF;
    ANALYZE tickets;
    ANALYZE ticket_events;
    ANALYZE ledger;
    RETURN true;
END $$;

DO $$ BEGIN
    EXECUTE format('ALTER FUNCTION refresh_statistics() SET search_path = %I, pg_temp', current_schema());
END $$;

REVOKE ALL ON FUNCTION refresh_statistics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION refresh_statistics() TO oshal_app;
