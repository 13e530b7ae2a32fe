-- What a reseller calls an installation (core::labels). search_text is
-- Labels::search_text, computed in core (Unicode upper case, which SQLite's
-- upper() lacks); NULL when there are no labels, and the search then
-- matches the SLC alone.
ALTER TABLE installations ADD COLUMN customer_name TEXT NOT NULL DEFAULT '';
ALTER TABLE installations ADD COLUMN site_name TEXT NOT NULL DEFAULT '';
ALTER TABLE installations ADD COLUMN notes TEXT NOT NULL DEFAULT '';
ALTER TABLE installations ADD COLUMN tags TEXT NOT NULL DEFAULT '';
ALTER TABLE installations ADD COLUMN search_text TEXT;
