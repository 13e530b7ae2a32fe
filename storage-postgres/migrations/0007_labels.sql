-- What a reseller calls an installation (core::labels). search_text is
-- Labels::search_text, computed in core so both backends match a search
-- alike; NULL when there are no labels, and the search then matches the
-- SLC alone.
ALTER TABLE installations
    ADD COLUMN customer_name TEXT NOT NULL DEFAULT '',
    ADD COLUMN site_name TEXT NOT NULL DEFAULT '',
    ADD COLUMN notes TEXT NOT NULL DEFAULT '',
    ADD COLUMN tags TEXT NOT NULL DEFAULT '',
    ADD COLUMN search_text TEXT;
