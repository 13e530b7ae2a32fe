-- A known value sealed under the master key the database's secrets are
-- sealed with (Store::master_key_check): a node started with another key is
-- refused at once, even on a new database that holds no secret yet (two
-- nodes each making up a key for it).
CREATE TABLE master_key_check (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    sealed    BLOB NOT NULL
);
