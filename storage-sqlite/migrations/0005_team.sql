-- A reseller's team: users, their invitations and sessions, and named
-- read-only API tokens. Secrets (sessions, invitations, API tokens) are kept
-- only as their SHA-256; passwords only as Argon2id PHC strings. Times are
-- milliseconds since the Unix epoch (UTC), like everywhere else.

-- Logins are normalised (lower case) by carewatch_core::team::Login, so the
-- primary key makes them unique across resellers, whatever their case.
CREATE TABLE users (
    login          TEXT PRIMARY KEY,
    reseller_id    TEXT NOT NULL REFERENCES resellers (id),
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    name           TEXT NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

-- A reseller's users, by login.
CREATE INDEX users_reseller ON users (reseller_id, login);

-- The user an invitation creates is in its columns; used_at is set once,
-- when it is accepted.
CREATE TABLE invitations (
    hash         BLOB PRIMARY KEY,
    login        TEXT NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    reseller_id  TEXT NOT NULL REFERENCES resellers (id),
    invited_by   TEXT,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
) STRICT;

CREATE INDEX invitations_expiry ON invitations (expires_at);

-- A session ends with its user: remove_user deletes them in its
-- transaction, and the foreign key cascades too.
CREATE TABLE sessions (
    hash        BLOB PRIMARY KEY,
    login       TEXT NOT NULL REFERENCES users (login) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX sessions_login ON sessions (login);

-- Revoked tokens stay listed (revoked_at set); created_by is kept as text,
-- so a token outlives the user who made it.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    reseller_id  TEXT NOT NULL REFERENCES resellers (id),
    name         TEXT NOT NULL,
    hash         BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    revoked_at   INTEGER
) STRICT;

CREATE INDEX api_tokens_reseller ON api_tokens (reseller_id, created_at DESC);
