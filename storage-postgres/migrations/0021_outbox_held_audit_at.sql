-- An outbox entry held until a maintenance window over its installation
-- ends (NewOutboxEntry::held): until when. Deleting a window moves it to
-- the end of what maintenance is left, or to the deletion. NULL: not held.
ALTER TABLE outbox ADD COLUMN held_until BIGINT;

-- Pruning the audit log past its retention, oldest first.
CREATE INDEX audit_log_at ON audit_log (at);
