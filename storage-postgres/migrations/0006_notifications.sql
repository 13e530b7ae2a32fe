-- Notifications (PostgreSQL): the same tables as the SQLite backend's
-- 0006_notifications.sql: a reseller's channels and maintenance windows, the
-- notifier's lease and feed position, the (channel, installation) states of
-- carewatch_core::notification::rules, and the outbox that delivery sends
-- from. Times are BIGINT milliseconds since the Unix epoch (UTC), durations
-- milliseconds.

-- A channel's destination and webhook signing secret are sealed under the
-- master key by the facade: only the sealed blob is stored. `installations`
-- is NULL for every installation of the reseller, else the chosen SLCs,
-- one per line. The status columns are its deliveries' DeliveryStatus.
CREATE TABLE channels (
    id                 TEXT COLLATE "C" PRIMARY KEY,
    reseller_id        TEXT COLLATE "C" NOT NULL REFERENCES resellers (id),
    name               TEXT NOT NULL,
    kind               TEXT NOT NULL,
    sealed             BYTEA NOT NULL,
    attention          BOOLEAN NOT NULL,
    installations      TEXT,
    hold_ms            BIGINT NOT NULL,
    reminder_ms        BIGINT,
    created_at         BIGINT NOT NULL,
    created_by         TEXT COLLATE "C" NOT NULL,
    last_attempt_at    BIGINT,
    last_error         TEXT,
    failures_in_a_row  BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX channels_reseller ON channels (reseller_id, created_at);

-- slc NULL: every installation of the reseller. every_ms NULL: once.
CREATE TABLE maintenance_windows (
    id           TEXT COLLATE "C" PRIMARY KEY,
    reseller_id  TEXT COLLATE "C" NOT NULL REFERENCES resellers (id),
    slc          TEXT COLLATE "C",
    starts_at    BIGINT NOT NULL,
    length_ms    BIGINT NOT NULL,
    every_ms     BIGINT,
    reason       TEXT NOT NULL,
    created_by   TEXT COLLATE "C" NOT NULL,
    created_at   BIGINT NOT NULL
);

CREATE INDEX maintenance_windows_reseller ON maintenance_windows (reseller_id, starts_at);

-- One row: which node derives notifications (its lease ends at
-- lease_until) and the last change-feed event it has processed. Taking the
-- lease is one conditional UPDATE of this row; a notifier step's commit
-- locks it (FOR UPDATE) before checking holder and position, so two nodes
-- never both write a step. It starts at the feed's head: notifications
-- begin with the changes after this version is installed.
CREATE TABLE notifier (
    singleton    BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    holder       TEXT COLLATE "C",
    lease_until  BIGINT NOT NULL,
    cursor       BIGINT NOT NULL
);

INSERT INTO notifier (singleton, holder, lease_until, cursor)
SELECT true, NULL, 0, last FROM change_head;

-- A (channel, installation) pair's Phase, as
-- carewatch_core::store::columns::PhaseColumns; Quiet is no row. due_at:
-- when the notifier must look at it again without a health change.
CREATE TABLE notification_states (
    channel_id      TEXT COLLATE "C" NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    slc             TEXT COLLATE "C" NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('pending', 'notified', 'recovering')),
    health          BIGINT NOT NULL,
    since           BIGINT NOT NULL,
    told_at         BIGINT,
    reminders       BIGINT NOT NULL,
    changed_health  BIGINT,
    changed_at      BIGINT,
    muted           BOOLEAN NOT NULL,
    recovered_at    BIGINT,
    due_at          BIGINT,
    PRIMARY KEY (channel_id, slc)
);

CREATE INDEX notification_states_due ON notification_states (due_at) WHERE due_at IS NOT NULL;

-- Notifications to deliver, and delivered or given up ones (kept for the
-- reseller to see). Rows outlive their channel (no foreign key): deleting
-- a channel gives its pending entries up. One entry per idempotency key.
-- A node claims an entry until claimed_until (an expired claim is free);
-- claims lock the rows they take with FOR UPDATE SKIP LOCKED, so nodes
-- claiming together take different entries without waiting for each other.
CREATE TABLE outbox (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel_id       TEXT COLLATE "C" NOT NULL,
    reseller_id      TEXT COLLATE "C" NOT NULL,
    slc              TEXT COLLATE "C",
    idempotency_key  TEXT COLLATE "C" NOT NULL UNIQUE,
    body             TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    last_error       TEXT,
    delivered_at     BIGINT,
    failed_at        BIGINT,
    claimed_by       TEXT COLLATE "C",
    claimed_until    BIGINT
);

-- Claiming: the pending entries by when they are due.
CREATE INDEX outbox_due ON outbox (next_attempt_at, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
-- A reseller's entries, newest first.
CREATE INDEX outbox_reseller ON outbox (reseller_id, id);
-- A channel's pending entries (given up when it is deleted).
CREATE INDEX outbox_channel_pending ON outbox (channel_id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
