//! Schema migrations, embedded in the binary and tracked by `user_version`.

use rusqlite::{Connection, OptionalExtension};

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_health_totals.sql"),
    include_str!("../migrations/0003_clean_stops.sql"),
    include_str!("../migrations/0004_change_feed.sql"),
    include_str!("../migrations/0005_team.sql"),
    include_str!("../migrations/0006_notifications.sql"),
    include_str!("../migrations/0007_labels.sql"),
    include_str!("../migrations/0008_service.sql"),
    include_str!("../migrations/0009_transfer.sql"),
    include_str!("../migrations/0010_audit.sql"),
    include_str!("../migrations/0011_label_order.sql"),
    include_str!("../migrations/0012_admission_version.sql"),
    include_str!("../migrations/0013_server_admission_version.sql"),
    include_str!("../migrations/0014_deleted_server_cursors.sql"),
    include_str!("../migrations/0015_notifier_nudges.sql"),
    include_str!("../migrations/0016_history_refusals.sql"),
    include_str!("../migrations/0017_maintenance_deleted_at.sql"),
    include_str!("../migrations/0018_master_key_check.sql"),
    include_str!("../migrations/0019_api_token_expiry.sql"),
    include_str!("../migrations/0020_outbox_held_audit_at.sql"),
];

/// Applies the migrations this database has not had yet, each in a transaction.
pub(crate) fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let current = usize::try_from(current).unwrap_or(usize::MAX);
    if current > MIGRATIONS.len() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "database schema version {current} is newer than this Carewatch knows ({}): upgrade Carewatch",
                MIGRATIONS.len()
            )),
        ));
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
        // Read again under the lock: another process (a second program on
        // the same file, e.g. the Python package beside `serve`) may have
        // applied it since the version was read.
        let now_at: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if usize::try_from(now_at).unwrap_or(usize::MAX) > version {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (version + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = version + 1, "sqlite schema migrated");
    }
    fill_label_order(conn)
}

/// Gives rows labeled before migration 11 their order keys, computed by
/// core. Afterwards the partial index finds nothing: one index probe per
/// open.
fn fill_label_order(conn: &mut Connection) -> rusqlite::Result<()> {
    use carewatch_core::labels::{LabelOrder, Labels};

    const UNSET: &str =
        "SELECT slc, customer_name, site_name FROM installations WHERE customer_order IS NULL";
    // Usually nothing: then no write transaction at all.
    let any: Option<String> = conn.query_row(UNSET, [], |r| r.get(0)).optional()?;
    if any.is_none() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let unset = {
        let mut stmt = tx.prepare(UNSET)?;
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<(String, String, String)>>>()?
    };
    for (slc, customer, site) in &unset {
        // Stored labels were checked when written; unreadable ones sort as
        // unlabeled rather than stop the store from opening.
        let labels = Labels::new(customer, site, "", &[]).unwrap_or_default();
        tx.execute(
            "UPDATE installations SET customer_order = ?2, site_order = ?3 WHERE slc = ?1",
            rusqlite::params![
                slc,
                labels.order_key(LabelOrder::Customer),
                labels.order_key(LabelOrder::Site)
            ],
        )?;
    }
    tx.commit()?;
    if !unset.is_empty() {
        tracing::info!(installations = unset.len(), "overview order keys filled in");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(conn: &Connection) -> Vec<(String, i64, i64)> {
        let mut stmt = conn
            .prepare("SELECT reseller_id, health, installations FROM health_totals ORDER BY 1, 2")
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows")
    }

    fn register(conn: &Connection, slc: &str, reseller: &str, health: i64) {
        conn.execute(
            "INSERT INTO installations (slc, reseller_id, product, product_version,
                 subscription_expires_at, consent, registered_at, health, worst_code, servers,
                 unavailable, late, active_conditions)
             VALUES (?1, ?2, 'XProtect', '1', NULL, 1, 0, ?3, NULL, 0, 0, 0, 0)",
            rusqlite::params![slc, reseller, health],
        )
        .expect("insert installation");
    }

    /// Several programs opening one new file at once (`serve` and the
    /// Python package, say): each migration is applied once, and every one
    /// of them opens it. Each read the version before taking the lock, so
    /// all but the first failed on tables that already existed.
    #[test]
    fn programs_migrating_one_file_at_once_all_succeed() {
        let dir = tempfile::tempdir().expect("directory");
        let path = dir.path().join("carewatch.db");
        let start = std::sync::Arc::new(std::sync::Barrier::new(4));
        let migrating: Vec<_> = (0..4)
            .map(|_| {
                let (path, start) = (path.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut conn = Connection::open(&path).expect("open");
                    conn.busy_timeout(std::time::Duration::from_secs(30))
                        .expect("busy timeout");
                    start.wait();
                    migrate(&mut conn)
                })
            })
            .collect();
        for thread in migrating {
            thread.join().expect("joined").expect("migrates");
        }
        let conn = Connection::open(&path).expect("open");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version, MIGRATIONS.len() as i64);
    }

    /// Version 2 counts the installations a version-1 database already has,
    /// and its triggers follow inserts, health changes, moves and deletes.
    #[test]
    fn health_totals_start_from_existing_rows_and_follow_every_write() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(MIGRATIONS[0]).expect("version 1");
        conn.pragma_update(None, "user_version", 1)
            .expect("mark version 1");
        for reseller in ["alpha", "beta"] {
            conn.execute(
                "INSERT INTO resellers VALUES (?1, ?1, x'00', 0)",
                [reseller],
            )
            .expect("insert reseller");
        }
        register(&conn, "A-1", "alpha", 0);
        register(&conn, "A-2", "alpha", 0);
        register(&conn, "A-3", "alpha", 3);

        migrate(&mut conn).expect("migrate to version 2");
        assert_eq!(
            totals(&conn),
            vec![("alpha".into(), 0, 2), ("alpha".into(), 3, 1)],
            "existing installations are counted"
        );

        register(&conn, "B-1", "beta", 1);
        conn.execute("UPDATE installations SET health = 3 WHERE slc = 'A-1'", [])
            .expect("health change");
        conn.execute("UPDATE installations SET late = 1 WHERE slc = 'A-2'", [])
            .expect("other change");
        conn.execute(
            "UPDATE installations SET reseller_id = 'beta' WHERE slc = 'A-3'",
            [],
        )
        .expect("move");
        conn.execute("DELETE FROM installations WHERE slc = 'A-2'", [])
            .expect("delete");
        assert_eq!(
            totals(&conn),
            vec![
                ("alpha".into(), 0, 0),
                ("alpha".into(), 3, 1),
                ("beta".into(), 1, 1),
                ("beta".into(), 3, 1),
            ]
        );
    }

    /// Version 11 gives installations labeled before it their order keys
    /// (core's, accents and case folded) when the store opens; unlabeled
    /// ones get core's unlabeled key from the column default.
    #[test]
    fn label_order_keys_are_filled_in_for_rows_labeled_before_version_11() {
        use carewatch_core::labels::{LabelOrder, Labels, UNLABELED_ORDER_KEY};

        let mut conn = Connection::open_in_memory().expect("open");
        for sql in &MIGRATIONS[..10] {
            conn.execute_batch(sql).expect("earlier versions");
        }
        conn.pragma_update(None, "user_version", 10)
            .expect("mark version 10");
        conn.execute(
            "INSERT INTO resellers VALUES ('alpha', 'alpha', x'00', 0)",
            [],
        )
        .expect("insert reseller");
        register(&conn, "A-1", "alpha", 0);
        register(&conn, "A-2", "alpha", 0);
        conn.execute(
            "UPDATE installations SET customer_name = 'Ärzte am Markt', site_name = 'Hafen'
             WHERE slc = 'A-1'",
            [],
        )
        .expect("labels");

        migrate(&mut conn).expect("migrate to version 11");
        let keys = |slc: &str| -> (String, String) {
            conn.query_row(
                "SELECT customer_order, site_order FROM installations WHERE slc = ?1",
                [slc],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("keys")
        };
        let labels = Labels::new("Ärzte am Markt", "Hafen", "", &[]).expect("valid");
        assert_eq!(
            keys("A-1"),
            (
                labels.order_key(LabelOrder::Customer),
                labels.order_key(LabelOrder::Site)
            )
        );
        assert_eq!(
            keys("A-2"),
            (
                UNLABELED_ORDER_KEY.to_owned(),
                UNLABELED_ORDER_KEY.to_owned()
            ),
            "the column default is core's key for the unlabeled"
        );
        register(&conn, "A-3", "alpha", 0);
        assert_eq!(keys("A-3").0, UNLABELED_ORDER_KEY, "and for new rows");
    }

    /// Version 13 gives each server row its installation's admission
    /// version (the in-place write of a remembered heartbeat checks it
    /// there), for rows that exist and rows to come, and keeps it equal.
    #[test]
    fn servers_carry_their_installations_admission_version() {
        let mut conn = Connection::open_in_memory().expect("open");
        for sql in &MIGRATIONS[..12] {
            conn.execute_batch(sql).expect("earlier versions");
        }
        conn.pragma_update(None, "user_version", 12)
            .expect("mark version 12");
        conn.execute(
            "INSERT INTO resellers VALUES ('alpha', 'alpha', x'00', 0)",
            [],
        )
        .expect("insert reseller");
        register(&conn, "A-1", "alpha", 0);
        register(&conn, "B-1", "alpha", 0);
        let add_server = |conn: &Connection, slc: &str, server: &str| {
            conn.execute(
                "INSERT INTO servers (slc, server_id, first_seen_at, last_seen_at, interval_ms,
                     last_sequence, last_digest, state, missed, unavailable_since, next_check_at)
                 VALUES (?1, ?2, 0, 0, 60000, 1, x'00', 0, 0, NULL, 180000)",
                [slc, server],
            )
            .expect("insert server");
        };
        add_server(&conn, "A-1", "rs-1");
        let rotate_key = |conn: &Connection, slc: &str, key_id: i64| {
            conn.execute(
                "INSERT INTO installation_keys (slc, key_id, sealed, created_at) VALUES (?1, ?2, x'00', 0)",
                rusqlite::params![slc, key_id],
            )
            .expect("add a key");
        };
        rotate_key(&conn, "A-1", 1);
        rotate_key(&conn, "A-1", 2);

        migrate(&mut conn).expect("migrate to version 13");
        let versions = |conn: &Connection| -> Vec<(String, String, i64, i64)> {
            let mut stmt = conn
                .prepare(
                    "SELECT s.slc, s.server_id, s.admission_version, i.admission_version
                     FROM servers s JOIN installations i ON i.slc = s.slc ORDER BY 1, 2",
                )
                .expect("prepare");
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows")
        };
        assert_eq!(
            versions(&conn),
            vec![("A-1".into(), "rs-1".into(), 2, 2)],
            "an existing row starts at its installation's version"
        );

        add_server(&conn, "A-1", "rs-2");
        add_server(&conn, "B-1", "rs-1");
        rotate_key(&conn, "A-1", 3);
        conn.execute("UPDATE installations SET consent = 0 WHERE slc = 'B-1'", [])
            .expect("consent withdrawn");
        conn.execute("UPDATE installations SET late = 1 WHERE slc = 'A-1'", [])
            .expect("a summary change");
        assert_eq!(
            versions(&conn),
            vec![
                ("A-1".into(), "rs-1".into(), 3, 3),
                ("A-1".into(), "rs-2".into(), 3, 3),
                ("B-1".into(), "rs-1".into(), 1, 1),
            ],
            "new rows start at it and every row follows its changes"
        );
    }

    /// Version 16 gives the servers of installations refused already (Care
    /// Plus ended, consent withdrawn) a `parked` history entry at the
    /// instant they were parked (not before a server's last message), as
    /// parking writes from then on: uptime reports count that time as
    /// unmonitored.
    #[test]
    fn servers_parked_before_version_16_get_their_parked_entry() {
        let mut conn = Connection::open_in_memory().expect("open");
        for sql in &MIGRATIONS[..15] {
            conn.execute_batch(sql).expect("earlier versions");
        }
        conn.pragma_update(None, "user_version", 15)
            .expect("mark version 15");
        conn.execute(
            "INSERT INTO resellers VALUES ('alpha', 'alpha', x'00', 0)",
            [],
        )
        .expect("insert reseller");
        register(&conn, "A-1", "alpha", 0);
        register(&conn, "B-1", "alpha", 0);
        for (slc, server, last_seen) in [
            ("A-1", "rs-1", 0),
            ("A-1", "rs-2", 7000),
            ("B-1", "rs-1", 0),
        ] {
            conn.execute(
                "INSERT INTO servers (slc, server_id, first_seen_at, last_seen_at, interval_ms,
                     last_sequence, last_digest, state, missed, unavailable_since, next_check_at)
                 VALUES (?1, ?2, 0, ?3, 60000, 1, x'00', 0, 0, NULL, NULL)",
                rusqlite::params![slc, server, last_seen],
            )
            .expect("insert server");
        }
        conn.execute(
            "UPDATE installations SET consent = 0, parked_at = 5000 WHERE slc = 'A-1'",
            [],
        )
        .expect("parked");

        migrate(&mut conn).expect("migrate to version 16");
        let mut stmt = conn
            .prepare("SELECT slc, server_id, at, kind FROM history ORDER BY slc, server_id")
            .expect("prepare");
        let entries: Vec<(String, String, i64, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        assert_eq!(
            entries,
            vec![
                ("A-1".into(), "rs-1".into(), 5000, "parked".into()),
                ("A-1".into(), "rs-2".into(), 7000, "parked".into()),
            ],
            "from when it was parked, not before a server's last message"
        );
    }
}
