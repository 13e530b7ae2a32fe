-- Carewatch schema, version 1. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE resellers (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    token_hash  BLOB NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE operators (
    name        TEXT PRIMARY KEY,
    token_hash  BLOB NOT NULL
) STRICT;

-- The summary columns (health .. active_conditions) are derived by
-- carewatch_core::health::summarize inside every write that can change them,
-- so the overview is one indexed read.
CREATE TABLE installations (
    slc                      TEXT PRIMARY KEY,
    reseller_id              TEXT NOT NULL REFERENCES resellers (id),
    product                  TEXT NOT NULL,
    product_version          TEXT NOT NULL,
    subscription_expires_at  INTEGER,
    consent                  INTEGER NOT NULL,
    registered_at            INTEGER NOT NULL,
    health                   INTEGER NOT NULL,
    worst_code               TEXT,
    servers                  INTEGER NOT NULL,
    unavailable              INTEGER NOT NULL,
    late                     INTEGER NOT NULL,
    active_conditions        INTEGER NOT NULL
) STRICT;

-- Overview: one reseller's installations, worst first, then by SLC; the
-- default "not Healthy" filter is a range on health within the reseller.
CREATE INDEX installations_overview ON installations (reseller_id, health DESC, slc);

CREATE TABLE installation_keys (
    slc         TEXT NOT NULL REFERENCES installations (slc),
    key_id      INTEGER NOT NULL,
    sealed      BLOB NOT NULL,   -- sealed under the master key, never in clear
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER,
    PRIMARY KEY (slc, key_id)
) STRICT;

CREATE TABLE servers (
    slc                TEXT NOT NULL REFERENCES installations (slc),
    server_id          TEXT NOT NULL,
    first_seen_at      INTEGER NOT NULL,
    last_seen_at       INTEGER NOT NULL,
    interval_ms        INTEGER NOT NULL,
    last_sequence      INTEGER NOT NULL,  -- u64 stored bit for bit
    last_digest        BLOB NOT NULL,
    state              INTEGER NOT NULL,  -- 0 available, 1 late, 2 unavailable
    missed             INTEGER NOT NULL,
    unavailable_since  INTEGER,
    next_check_at      INTEGER,           -- NULL while unavailable
    PRIMARY KEY (slc, server_id)
) STRICT, WITHOUT ROWID;

-- The sweeper reads only servers whose availability may have changed with
-- time; on-time servers keep pushing next_check_at ahead and are never read.
CREATE INDEX servers_due ON servers (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE TABLE conditions (
    id           INTEGER PRIMARY KEY,
    slc          TEXT NOT NULL REFERENCES installations (slc),
    server_id    TEXT NOT NULL,
    code         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    opened_at    INTEGER NOT NULL,
    resolved_at  INTEGER
) STRICT;

-- At most one active condition per (server, code, subject); also the lookup
-- a snapshot diff and the summary need.
CREATE UNIQUE INDEX conditions_active ON conditions (slc, server_id, code, subject) WHERE resolved_at IS NULL;

CREATE TABLE history (
    id           INTEGER PRIMARY KEY,
    slc          TEXT NOT NULL REFERENCES installations (slc),
    at           INTEGER NOT NULL,
    server_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    code         TEXT,
    subject      TEXT,
    duration_ms  INTEGER,
    missed       INTEGER
) STRICT;

CREATE INDEX history_recent ON history (slc, at DESC, id DESC);

CREATE TABLE liveness (
    node      TEXT PRIMARY KEY,
    alive_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE downtime (
    start_at  INTEGER NOT NULL,
    end_at    INTEGER NOT NULL
) STRICT;

CREATE INDEX downtime_end ON downtime (end_at);
