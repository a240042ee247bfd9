-- A ticket's gate decision: when the API's auth gate admitted the request
-- that submitted it. NULL where no gate stands (the desktop's IPC, the
-- controller's own submissions) and for tickets stored before this.
-- `apply_batch` takes it as one more column of the new tickets (`n_gate`);
-- a new argument list is a new function, so the old one is dropped. Only
-- the new column differs from migration 0006.

ALTER TABLE tickets ADD COLUMN gate_at_ms bigint;

DROP FUNCTION apply_batch(
    uuid[], text[], int8[], int8[], bool[],
    uuid[], uuid[], text[], jsonb[], int2[], text[], text[], text[], int4[], int4[], int4[],
    text[], uuid[], uuid[], uuid[], int8[], jsonb[], text[], int8[], int8[],
    uuid[], uuid[], text[], int4[], int4[], text[], int8[], jsonb[], text[], int8[],
    uuid[], uuid[], int4[], int8[], text[], text[], int4[], text[], text[],
    uuid[], uuid[], int4[], text[], text[], int8[], int8[], int8[], bool[], text[], int8[]);

CREATE FUNCTION apply_batch(
    t_id uuid[], t_name text[], t_budget int8[], t_created int8[], t_set_budget bool[],
    n_tenant uuid[], n_id uuid[], n_kind text[], n_payload jsonb[], n_priority int2[], n_skill text[],
    n_idem text[], n_state text[], n_attempts int4[], n_max_attempts int4[], n_transitions int4[],
    n_bot text[], n_parent uuid[], n_correlation uuid[], n_causation uuid[], n_not_before int8[],
    n_result jsonb[], n_error text[], n_created int8[], n_updated int8[], n_gate int8[],
    u_tenant uuid[], u_id uuid[], u_state text[], u_attempts int4[], u_transitions int4[], u_bot text[],
    u_not_before int8[], u_result jsonb[], u_error text[], u_updated int8[],
    e_tenant uuid[], e_ticket uuid[], e_seq int4[], e_at int8[], e_from text[], e_to text[],
    e_attempt int4[], e_bot text[], e_reason text[],
    l_tenant uuid[], l_ticket uuid[], l_attempt int4[], l_bot text[], l_model text[], l_input int8[],
    l_output int8[], l_cost int8[], l_unpriced bool[], l_price_version text[], l_at int8[]
) RETURNS TABLE (refused uuid, existing uuid)
LANGUAGE plpgsql AS $$
DECLARE
    cur uuid;
    dups uuid[];
BEGIN
    -- The directory first, in order (a later budget for a tenant wins).
    FOR i IN 1 .. coalesce(cardinality(t_id), 0) LOOP
        IF t_set_budget[i] THEN
            INSERT INTO tenants (id, name, budget_nusd, created_at_ms)
            VALUES (t_id[i], t_name[i], t_budget[i], t_created[i])
            ON CONFLICT (id) DO UPDATE SET budget_nusd = excluded.budget_nusd;
        ELSE
            INSERT INTO tenants (id, name, budget_nusd, created_at_ms)
            VALUES (t_id[i], t_name[i], t_budget[i], t_created[i])
            ON CONFLICT DO NOTHING;
        END IF;
    END LOOP;

    FOR cur IN
        SELECT DISTINCT x FROM unnest(n_tenant || u_tenant || e_tenant || l_tenant) AS x ORDER BY x
    LOOP
        PERFORM set_config('app.tenant_id', cur::text, true);
        dups := '{}';

        -- Refused: not inserted, and not already stored under its own id.
        IF coalesce(cardinality(n_id), 0) > 0 THEN
            WITH inserted AS (
                INSERT INTO tickets (id, tenant_id, kind, payload, priority, skill, idempotency_key, state,
                                     attempts, max_attempts, transitions, bot_id, parent_id, correlation_id,
                                     causation_id, not_before_ms, result, error, created_at_ms, updated_at_ms,
                                     gate_at_ms)
                SELECT u.id, u.tenant, u.kind, u.payload, u.priority, u.skill, u.idem, u.state, u.attempts,
                       u.max_attempts, u.transitions, u.bot, u.parent, u.correlation, u.causation, u.not_before,
                       u.result, u.error, u.created, u.updated, u.gate
                FROM unnest(n_tenant, n_id, n_kind, n_payload, n_priority, n_skill, n_idem, n_state, n_attempts,
                            n_max_attempts, n_transitions, n_bot, n_parent, n_correlation, n_causation,
                            n_not_before, n_result, n_error, n_created, n_updated, n_gate)
                     AS u(tenant, id, kind, payload, priority, skill, idem, state, attempts, max_attempts,
                          transitions, bot, parent, correlation, causation, not_before, result, error, created,
                          updated, gate)
                WHERE u.tenant = cur
                ON CONFLICT DO NOTHING
                RETURNING id
            )
            SELECT coalesce(array_agg(u.id), '{}') INTO dups
            FROM unnest(n_tenant, n_id) AS u(tenant, id)
            WHERE u.tenant = cur AND u.id NOT IN (SELECT id FROM inserted)
              AND NOT EXISTS (SELECT 1 FROM tickets t WHERE t.tenant_id = cur AND t.id = u.id);

            IF cardinality(dups) > 0 THEN
                RETURN QUERY
                SELECT u.id, (SELECT t.id FROM tickets t
                              WHERE t.tenant_id = cur AND t.idempotency_key = u.idem)
                FROM unnest(n_tenant, n_id, n_idem) AS u(tenant, id, idem)
                WHERE u.tenant = cur AND u.id = ANY (dups);
            END IF;
        END IF;

        IF coalesce(cardinality(u_id), 0) > 0 THEN
            UPDATE tickets AS t
            SET state = u.state, attempts = u.attempts, transitions = u.transitions, bot_id = u.bot,
                not_before_ms = u.not_before, result = u.result, error = u.error, updated_at_ms = u.updated
            FROM unnest(u_tenant, u_id, u_state, u_attempts, u_transitions, u_bot, u_not_before, u_result,
                        u_error, u_updated)
                 AS u(tenant, id, state, attempts, transitions, bot, not_before, result, error, updated)
            WHERE u.tenant = cur AND t.id = u.id;
        END IF;

        IF coalesce(cardinality(e_ticket), 0) > 0 THEN
            INSERT INTO ticket_events (tenant_id, ticket_id, seq, at_ms, from_state, to_state, attempt, bot_id,
                                       reason)
            SELECT u.tenant, u.ticket, u.seq, u.at, u.from_state, u.to_state, u.attempt, u.bot, u.reason
            FROM unnest(e_tenant, e_ticket, e_seq, e_at, e_from, e_to, e_attempt, e_bot, e_reason)
                 AS u(tenant, ticket, seq, at, from_state, to_state, attempt, bot, reason)
            WHERE u.tenant = cur AND u.ticket <> ALL (dups)
            ON CONFLICT DO NOTHING;
        END IF;

        IF coalesce(cardinality(l_ticket), 0) > 0 THEN
            INSERT INTO ledger (tenant_id, ticket_id, attempt, bot_id, model, input_tokens, output_tokens,
                                cost_nusd, unpriced, price_version, at_ms)
            SELECT u.*
            FROM unnest(l_tenant, l_ticket, l_attempt, l_bot, l_model, l_input, l_output, l_cost, l_unpriced,
                        l_price_version, l_at)
                 AS u(tenant, ticket, attempt, bot, model, input, output, cost, unpriced, price_version, at)
            WHERE u.tenant = cur
            ON CONFLICT DO NOTHING;
        END IF;
    END LOOP;
END $$;

DO $$ BEGIN
    EXECUTE format('ALTER FUNCTION apply_batch SET search_path = %I, pg_temp', current_schema());
END $$;

REVOKE ALL ON FUNCTION apply_batch FROM PUBLIC;
GRANT EXECUTE ON FUNCTION apply_batch TO oshal_app;
