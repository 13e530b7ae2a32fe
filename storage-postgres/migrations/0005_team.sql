-- A reseller's team (PostgreSQL): the same tables as the SQLite backend's
-- 0005_team.sql. Secrets (sessions, invitations, API tokens) are kept only
-- as their SHA-256 (BYTEA); passwords only as Argon2id PHC strings; times
-- are BIGINT milliseconds since the Unix epoch (UTC).

-- Logins are normalised (lower case) by carewatch_core::team::Login, so the
-- primary key makes them unique across resellers, whatever their case.
CREATE TABLE users (
    login          TEXT COLLATE "C" PRIMARY KEY,
    reseller_id    TEXT COLLATE "C" NOT NULL REFERENCES resellers (id),
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    name           TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- A reseller's users, by login.
CREATE INDEX users_reseller ON users (reseller_id, login);

-- The user an invitation creates is in its columns; used_at is set once,
-- when it is accepted (one conditional UPDATE: two acceptances racing on two
-- nodes serialise on the row, and the second finds it used).
CREATE TABLE invitations (
    hash         BYTEA PRIMARY KEY,
    login        TEXT COLLATE "C" NOT NULL,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    reseller_id  TEXT COLLATE "C" NOT NULL REFERENCES resellers (id),
    invited_by   TEXT COLLATE "C",
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_at      BIGINT
);

CREATE INDEX invitations_expiry ON invitations (expires_at);

-- A session ends with its user: remove_user deletes them in its
-- transaction, and the foreign key cascades too.
CREATE TABLE sessions (
    hash        BYTEA PRIMARY KEY,
    login       TEXT COLLATE "C" NOT NULL REFERENCES users (login) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX sessions_login ON sessions (login);

-- Revoked tokens stay listed (revoked_at set); created_by is kept as text,
-- so a token outlives the user who made it.
CREATE TABLE api_tokens (
    id           TEXT COLLATE "C" PRIMARY KEY,
    reseller_id  TEXT COLLATE "C" NOT NULL REFERENCES resellers (id),
    name         TEXT NOT NULL,
    hash         BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT COLLATE "C" NOT NULL,
    revoked_at   BIGINT
);

CREATE INDEX api_tokens_reseller ON api_tokens (reseller_id, created_at DESC);
