-- Tenant-scoped API tokens: the SHA-256 of each value, never the value.
-- The directory of credentials (see store/tokens.rs), not a tenant's data.
CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('operator', 'viewer')),
    label         TEXT NOT NULL,
    hash          TEXT NOT NULL UNIQUE,
    created_at_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
