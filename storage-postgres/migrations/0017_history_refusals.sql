-- An installation's refusals (Care Plus ended, consent withdrawn) in each
-- server's history: an uptime report finds a server's latest one before its
-- period with one probe, and one of a server never parked in an empty range.
CREATE INDEX history_refusals ON history (slc, server_id, at)
    WHERE kind IN ('parked', 'resumed');
