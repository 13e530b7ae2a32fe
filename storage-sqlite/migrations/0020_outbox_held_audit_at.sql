-- An outbox entry held until a maintenance window over its installation
-- ends (NewOutboxEntry::held): until when. Deleting a window moves it to
-- the end of what maintenance (made before the entry) is left, or to the
-- deletion. NULL: not held.
ALTER TABLE outbox ADD COLUMN held_until INTEGER;

-- A reseller's held entries, for a window's deletion.
CREATE INDEX outbox_held ON outbox (reseller_id)
    WHERE held_until IS NOT NULL AND delivered_at IS NULL AND failed_at IS NULL;

-- Pruning the audit log past its retention, oldest first.
CREATE INDEX audit_log_at ON audit_log (at);
