-- Carewatch schema, version 1 (PostgreSQL). The same tables as the SQLite
-- backend's 0001_initial.sql, so both behave alike:
--   * times are BIGINT milliseconds since the Unix epoch (UTC);
--   * u64 sequence numbers are stored bit for bit in BIGINT and compared in
--     Rust after the row is locked (SQL `>` on the bit-cast is wrong above
--     i64::MAX);
--   * digests, hashes and sealed keys are BYTEA;
--   * identifiers are TEXT COLLATE "C": byte order, like SQLite's BINARY, so
--     "ORDER BY slc" pages identically whatever the database's locale.
-- Tables are created unqualified: they land in the first schema of the
-- connection's search_path (one schema per test, or per deployment).

CREATE TABLE resellers (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    token_hash  BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE operators (
    name        TEXT COLLATE "C" PRIMARY KEY,
    token_hash  BYTEA NOT NULL
);

-- The summary columns (health .. active_conditions) are derived by
-- carewatch_core::health::summarize inside every write that can change them,
-- so the overview is one indexed read. Writers lock this row (FOR UPDATE)
-- before recomputing, so two nodes never store a summary computed from a
-- stale view of the servers.
CREATE TABLE installations (
    slc                      TEXT COLLATE "C" PRIMARY KEY,
    reseller_id              TEXT COLLATE "C" NOT NULL REFERENCES resellers (id),
    product                  TEXT NOT NULL,
    product_version          TEXT NOT NULL,
    subscription_expires_at  BIGINT,
    consent                  BOOLEAN NOT NULL,
    registered_at            BIGINT NOT NULL,
    health                   SMALLINT NOT NULL CHECK (health BETWEEN 0 AND 4),  -- Health::rank, higher is worse
    worst_code               TEXT,
    servers                  BIGINT NOT NULL,
    unavailable              BIGINT NOT NULL,
    late                     BIGINT NOT NULL,
    active_conditions        BIGINT NOT NULL
);

-- Overview, "worst first, non-Healthy first", keyset paged: the index order
-- IS the page order (health DESC, then SLC), so one reseller's page is a
-- range scan that starts at the page cursor and stops after page_size rows,
-- however many installations (100k+) the reseller has; no sort, no OFFSET.
-- The default "not Healthy" filter is the range health >= 1 inside the
-- reseller's prefix, and the per-health totals are an index-only scan.
CREATE INDEX installations_overview ON installations (reseller_id, health DESC, slc);

CREATE TABLE installation_keys (
    slc         TEXT COLLATE "C" NOT NULL REFERENCES installations (slc),
    key_id      BIGINT NOT NULL,  -- u32
    sealed      BYTEA NOT NULL,   -- sealed under the master key, never in clear
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT,
    PRIMARY KEY (slc, key_id)
);

CREATE TABLE servers (
    slc                TEXT COLLATE "C" NOT NULL REFERENCES installations (slc),
    server_id          TEXT COLLATE "C" NOT NULL,
    first_seen_at      BIGINT NOT NULL,
    last_seen_at       BIGINT NOT NULL,
    interval_ms        BIGINT NOT NULL,
    last_sequence      BIGINT NOT NULL,  -- u64 stored bit for bit
    last_digest        BYTEA NOT NULL,
    state              SMALLINT NOT NULL,  -- 0 available, 1 late, 2 unavailable
    missed             BIGINT NOT NULL,
    unavailable_since  BIGINT,
    next_check_at      BIGINT,           -- NULL while unavailable
    PRIMARY KEY (slc, server_id)
);

-- The sweeper's deadline query ("next_check_at <= now ORDER BY next_check_at
-- LIMIT n") reads this index from its start and stops at now: only servers
-- whose availability may have changed with time are touched; on-time servers
-- keep pushing next_check_at ahead. Partial: unavailable servers (NULL) wait
-- for a message, not for the clock, so they are not in it at all, which
-- keeps it small while a site is down and the sweep from rereading them.
CREATE INDEX servers_due ON servers (next_check_at) WHERE next_check_at IS NOT NULL;

CREATE TABLE conditions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slc          TEXT COLLATE "C" NOT NULL REFERENCES installations (slc),
    server_id    TEXT COLLATE "C" NOT NULL,
    code         TEXT NOT NULL,
    subject      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    opened_at    BIGINT NOT NULL,
    resolved_at  BIGINT
);

-- At most one active condition per (server, code, subject); also the lookup
-- a snapshot diff and the summary need (only active rows are in it).
CREATE UNIQUE INDEX conditions_active ON conditions (slc, server_id, code, subject) WHERE resolved_at IS NULL;

CREATE TABLE history (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slc          TEXT COLLATE "C" NOT NULL REFERENCES installations (slc),
    at           BIGINT NOT NULL,
    server_id    TEXT COLLATE "C" NOT NULL,
    kind         TEXT NOT NULL,
    code         TEXT,
    subject      TEXT,
    duration_ms  BIGINT,
    missed       BIGINT
);

-- An installation's newest history first: a backward range scan, LIMIT n.
CREATE INDEX history_recent ON history (slc, at DESC, id DESC);

-- One row per node; mark_alive locks the table (SHARE ROW EXCLUSIVE) so the
-- nodes' marks are read and written one after another.
CREATE TABLE liveness (
    node      TEXT COLLATE "C" PRIMARY KEY,
    alive_at  BIGINT NOT NULL
);

CREATE TABLE downtime (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    start_at  BIGINT NOT NULL,
    end_at    BIGINT NOT NULL
);

CREATE INDEX downtime_end ON downtime (end_at);
