-- A deleted maintenance window is kept, marked with when it was deleted: it
-- excluded time from uptime reports until then, and a report of a past
-- period must not change because a window was deleted afterwards. Only
-- reports read deleted windows.
ALTER TABLE maintenance_windows ADD COLUMN deleted_at BIGINT;
