-- An installation's refusals (Care Plus ended, consent withdrawn) in each
-- server's history: an uptime report finds a server's latest one before its
-- period with one probe, and one of a server never parked in an empty range.
CREATE INDEX history_refusals ON history (slc, server_id, at)
    WHERE kind IN ('parked', 'resumed');

-- Installations refused already: their servers' history says since when
-- (not before a server's last message: installations withdrawn before
-- migration 8 were given their registration time as parked_at).
INSERT INTO history (slc, at, server_id, kind)
SELECT s.slc, max(i.parked_at, s.last_seen_at), s.server_id, 'parked'
FROM installations i JOIN servers s ON s.slc = i.slc
WHERE i.parked_at IS NOT NULL
ORDER BY s.slc, s.server_id;
