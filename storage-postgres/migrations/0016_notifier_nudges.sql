-- How many times notification states were made due from outside the
-- notifier (a maintenance window made or deleted, an installation's
-- messages accepted again). A notifier step is written only if this did not
-- change since it took its lease: a step that read the states before would
-- write its view of them over the nudge.
ALTER TABLE notifier ADD COLUMN nudges BIGINT NOT NULL DEFAULT 0;
