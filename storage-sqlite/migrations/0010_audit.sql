-- The audit log (issue 18, core::audit): who did what, when. actor_reseller
-- is the acting user's reseller (NULL for the operator): a reseller's
-- admins read their team's entries by it.
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              INTEGER NOT NULL,
    actor_kind      TEXT NOT NULL,
    actor_reseller  TEXT,
    actor_name      TEXT NOT NULL,
    action          TEXT NOT NULL,
    target          TEXT NOT NULL,
    detail          TEXT NOT NULL
);
CREATE INDEX audit_log_team ON audit_log (actor_reseller, id)
    WHERE actor_reseller IS NOT NULL;
