-- Transfers (issue 18). history_from: what happened before it (history,
-- change events, report time) is hidden from the installation's reseller;
-- NULL when everything is visible. changes.reseller_id addresses an event
-- to one reseller whoever owns the installation when it is read (a
-- transfer's "removed" event, to the reseller it left); NULL: the owner.
ALTER TABLE installations ADD COLUMN history_from INTEGER;
ALTER TABLE changes ADD COLUMN reseller_id TEXT;
