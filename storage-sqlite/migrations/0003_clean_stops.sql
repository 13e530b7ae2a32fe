-- A node's clean stop: its liveness mark is then the exact moment it
-- stopped receiving, not merely its last sign of life.
ALTER TABLE liveness ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;
