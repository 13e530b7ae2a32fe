-- Notifications: a reseller's channels and maintenance windows, the
-- notifier's lease and feed position, the (channel, installation) states of
-- carewatch_core::notification::rules, and the outbox that delivery sends
-- from. Times are milliseconds since the Unix epoch (UTC), durations
-- milliseconds.

-- A channel's destination and webhook signing secret are sealed under the
-- master key by the facade: only the sealed blob is stored. `installations`
-- is NULL for every installation of the reseller, else the chosen SLCs,
-- one per line. The status columns are its deliveries' DeliveryStatus.
CREATE TABLE channels (
    id                 TEXT PRIMARY KEY,
    reseller_id        TEXT NOT NULL REFERENCES resellers (id),
    name               TEXT NOT NULL,
    kind               TEXT NOT NULL,
    sealed             BLOB NOT NULL,
    attention          INTEGER NOT NULL,
    installations      TEXT,
    hold_ms            INTEGER NOT NULL,
    reminder_ms        INTEGER,
    created_at         INTEGER NOT NULL,
    created_by         TEXT NOT NULL,
    last_attempt_at    INTEGER,
    last_error         TEXT,
    failures_in_a_row  INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX channels_reseller ON channels (reseller_id, created_at);

-- slc NULL: every installation of the reseller. every_ms NULL: once.
CREATE TABLE maintenance_windows (
    id           TEXT PRIMARY KEY,
    reseller_id  TEXT NOT NULL REFERENCES resellers (id),
    slc          TEXT,
    starts_at    INTEGER NOT NULL,
    length_ms    INTEGER NOT NULL,
    every_ms     INTEGER,
    reason       TEXT NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX maintenance_windows_reseller ON maintenance_windows (reseller_id, starts_at);

-- One row: which node derives notifications (its lease ends at
-- lease_until) and the last change-feed event it has processed. It starts
-- at the feed's head: notifications begin with the changes after this
-- version is installed.
CREATE TABLE notifier (
    singleton    INTEGER PRIMARY KEY CHECK (singleton = 1),
    holder       TEXT,
    lease_until  INTEGER NOT NULL,
    cursor       INTEGER NOT NULL
) STRICT;

INSERT INTO notifier (singleton, holder, lease_until, cursor)
VALUES (1, NULL, 0, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'changes'), 0));

-- A (channel, installation) pair's Phase, as
-- carewatch_core::store::columns::PhaseColumns; Quiet is no row. due_at:
-- when the notifier must look at it again without a health change.
CREATE TABLE notification_states (
    channel_id      TEXT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    slc             TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('pending', 'notified', 'recovering')),
    health          INTEGER NOT NULL,
    since           INTEGER NOT NULL,
    told_at         INTEGER,
    reminders       INTEGER NOT NULL,
    changed_health  INTEGER,
    changed_at      INTEGER,
    muted           INTEGER NOT NULL,
    recovered_at    INTEGER,
    due_at          INTEGER,
    PRIMARY KEY (channel_id, slc)
) STRICT, WITHOUT ROWID;

CREATE INDEX notification_states_due ON notification_states (due_at) WHERE due_at IS NOT NULL;

-- Notifications to deliver, and delivered or given up ones (kept for the
-- reseller to see). Rows outlive their channel (no foreign key): deleting
-- a channel gives its pending entries up. One entry per idempotency key.
-- A node claims an entry until claimed_until; an expired claim is free.
CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id       TEXT NOT NULL,
    reseller_id      TEXT NOT NULL,
    slc              TEXT,
    idempotency_key  TEXT NOT NULL UNIQUE,
    body             TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    delivered_at     INTEGER,
    failed_at        INTEGER,
    claimed_by       TEXT,
    claimed_until    INTEGER
) STRICT;

-- Claiming: the pending entries by when they are due.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
-- A reseller's entries, newest first.
CREATE INDEX outbox_reseller ON outbox (reseller_id, id);
-- A channel's pending entries (given up when it is deleted).
CREATE INDEX outbox_channel_pending ON outbox (channel_id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
