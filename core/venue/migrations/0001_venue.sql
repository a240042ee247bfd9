-- The paper venue's state: the API keys it accepts (their SHA-256, never
-- the key) and every order it took with what it answered.
CREATE TABLE api_keys (
    hash          TEXT PRIMARY KEY NOT NULL,
    created_at_ms INTEGER NOT NULL
);

CREATE TABLE orders (
    account         TEXT    NOT NULL,
    client_order_id TEXT    NOT NULL,
    -- The venue order id's number within the account (`V-<seq>`).
    seq             INTEGER NOT NULL,
    idempotency_key TEXT UNIQUE,
    order_json      TEXT    NOT NULL,
    report_json     TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL,
    PRIMARY KEY (account, client_order_id),
    UNIQUE (account, seq)
) WITHOUT ROWID;
