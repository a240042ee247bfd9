-- Tenant-scoped API tokens: the SHA-256 of each value, never the value.
--
-- The directory of credentials, like `tenants`, not a tenant's data: the
-- API's gate looks a presented token up by its hash before it knows whose
-- it is, so the table has no row-level security and no tenant_id column
-- (the tenant is named, as in the token's grant). Only the controller's
-- role reads it; dashboards (oshal_readonly) get nothing. No DELETE: a
-- token is revoked, and its row stays as the record of who held what.
CREATE TABLE api_tokens (
    id            text PRIMARY KEY,
    tenant        text NOT NULL,
    role          text NOT NULL CHECK (role IN ('operator', 'viewer')),
    label         text NOT NULL,
    hash          text NOT NULL UNIQUE,
    created_at_ms bigint NOT NULL,
    revoked_at_ms bigint
);

GRANT SELECT, INSERT, UPDATE ON api_tokens TO oshal_app;
