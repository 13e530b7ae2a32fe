-- The overview sorted by customer or site (core::labels::Labels::order_key,
-- computed in core so both backends sort alike; compared byte for byte,
-- hence COLLATE "C"). '2' is core's UNLABELED_ORDER_KEY, right for every
-- unlabeled row. Rows labeled before this version are set to NULL here and
-- given their keys by the store when it opens (fill_label_order in
-- src/migrate.rs), found through the partial index.
ALTER TABLE installations
    ADD COLUMN customer_order TEXT COLLATE "C" DEFAULT '2',
    ADD COLUMN site_order TEXT COLLATE "C" DEFAULT '2';
UPDATE installations SET customer_order = NULL, site_order = NULL
    WHERE customer_name <> '' OR site_name <> '';
CREATE INDEX installations_by_customer ON installations (reseller_id, customer_order, slc);
CREATE INDEX installations_by_site ON installations (reseller_id, site_order, slc);
CREATE INDEX installations_order_unset ON installations (slc) WHERE customer_order IS NULL;
