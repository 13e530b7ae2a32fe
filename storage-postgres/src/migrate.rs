//! The schema migrations, and applying them when a store opens.

use std::time::Duration;

use carewatch_core::{Error, Result};
use sqlx_core::connection::{ConnectOptions, Connection};
use sqlx_core::migrate::{Migration, MigrationType, Migrator};
use sqlx_core::sql_str::SqlSafeStr;
use sqlx_postgres::{PgConnectOptions, PgConnection};

use crate::errors::{Kind, map_err};

/// The schema migrations, embedded in the binary and run by sqlx's
/// `Migrator`, which takes a PostgreSQL advisory lock (`pg_advisory_lock`,
/// keyed on the database name) before it looks at `_sqlx_migrations`, so
/// nodes starting together apply each migration once. This is what
/// `sqlx::migrate!("./migrations")` expands to; the macro itself is not used
/// because the `sqlx` facade crate pulls in `sqlx-sqlite`, whose
/// `libsqlite3-sys` `links` conflicts with the SQLite backend's (Cargo
/// resolves `links` for optional dependencies too), so this crate depends
/// on `sqlx-core` and `sqlx-postgres` directly.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "health totals",
        include_str!("../migrations/0002_health_totals.sql"),
    ),
    (
        3,
        "clean stops",
        include_str!("../migrations/0003_clean_stops.sql"),
    ),
    (
        4,
        "change feed",
        include_str!("../migrations/0004_change_feed.sql"),
    ),
    (5, "team", include_str!("../migrations/0005_team.sql")),
    (
        6,
        "notifications",
        include_str!("../migrations/0006_notifications.sql"),
    ),
    (7, "labels", include_str!("../migrations/0007_labels.sql")),
    (8, "service", include_str!("../migrations/0008_service.sql")),
    (
        9,
        "transfer",
        include_str!("../migrations/0009_transfer.sql"),
    ),
    (10, "audit", include_str!("../migrations/0010_audit.sql")),
    (
        11,
        "label order",
        include_str!("../migrations/0011_label_order.sql"),
    ),
    (
        12,
        "feed numbering",
        include_str!("../migrations/0012_feed_numbering.sql"),
    ),
    (
        13,
        "admission version",
        include_str!("../migrations/0013_admission_version.sql"),
    ),
    (
        14,
        "feed numbering in linear time",
        include_str!("../migrations/0014_feed_numbering_linear.sql"),
    ),
    (
        15,
        "deleted server cursors",
        include_str!("../migrations/0015_deleted_server_cursors.sql"),
    ),
    (
        16,
        "notifier nudges",
        include_str!("../migrations/0016_notifier_nudges.sql"),
    ),
    (
        17,
        "history refusals",
        include_str!("../migrations/0017_history_refusals.sql"),
    ),
    (
        18,
        "maintenance deleted at",
        include_str!("../migrations/0018_maintenance_deleted_at.sql"),
    ),
    (
        19,
        "master key check",
        include_str!("../migrations/0019_master_key_check.sql"),
    ),
    (
        20,
        "api token expiry",
        include_str!("../migrations/0020_api_token_expiry.sql"),
    ),
    (
        21,
        "outbox held until, audit log by time",
        include_str!("../migrations/0021_outbox_held_audit_at.sql"),
    ),
];

fn migrator() -> Migrator {
    let mut migrator = Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    );
    // A schema a newer node migrated is opened too (with a warning, see
    // `migrate`): in a rolling upgrade the nodes not yet upgraded must be
    // able to start again, and migrations only add.
    migrator.set_ignore_missing(true);
    migrator
}

/// Whether the schema the options name (or the `search_path`'s first)
/// holds Carewatch's tables, on a connection of its own; nothing is
/// created.
pub(crate) async fn holds_carewatch(options: &PgConnectOptions, timeout: Duration) -> Result<bool> {
    let mut conn = tokio::time::timeout(timeout, options.connect())
        .await
        .map_err(|e| Error::storage_unavailable("connecting to PostgreSQL timed out", e))?
        .map_err(map_err)?;
    let holds = sqlx_core::query_scalar::query_scalar::<_, bool>(
        "SELECT to_regclass('notifier') IS NOT NULL AND to_regclass('installations') IS NOT NULL",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(map_err);
    let _ = conn.close().await;
    holds
}

/// Applies the migrations on a connection of its own, closed afterwards: the
/// migrator's session advisory lock is released even if a migration fails.
pub(crate) async fn migrate(
    options: &PgConnectOptions,
    schema: Option<&str>,
    timeout: Duration,
) -> Result<()> {
    let unavailable = |e: sqlx_core::Error| match map_err(e) {
        Error::StorageUnavailable {
            reason,
            message,
            source,
        } => Error::StorageUnavailable {
            reason,
            message: format!("cannot connect to PostgreSQL: {message}"),
            source,
        },
        other => other,
    };
    let mut conn = tokio::time::timeout(timeout, options.connect())
        .await
        .map_err(|e| Error::storage_unavailable("connecting to PostgreSQL timed out", e))?
        .map_err(unavailable)?;
    let result = migrate_on(&mut conn, schema).await;
    // Dropping the connection would also end the session (and its locks).
    let _ = conn.close().await;
    result
}

async fn migrate_on(conn: &mut PgConnection, schema: Option<&str>) -> Result<()> {
    if let Some(schema) = schema {
        // The name was validated by PostgresConfig::schema (no quoting issues).
        let sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        let create = sqlx_core::query::query::<sqlx_postgres::Postgres>(
            sqlx_core::sql_str::AssertSqlSafe(sql),
        );
        match create.execute(&mut *conn).await {
            Ok(_) => {}
            // Two nodes creating it at once: the loser sees a unique violation.
            Err(e) if crate::errors::classify(&e) == Kind::UniqueViolation => {}
            Err(e) => return Err(map_err(e)),
        }
    }
    let current: Option<String> = sqlx_core::query_scalar::query_scalar("SELECT current_schema()")
        .fetch_one(&mut *conn)
        .await
        .map_err(map_err)?;
    if current.is_none() {
        return Err(Error::Storage {
            message: "the search_path names no existing schema: create it, or set one with PostgresConfig::schema".into(),
            source: None,
        });
    }
    // `run_direct` is what `Migrator::run` calls once it has a connection;
    // called directly, the future stays `Send` for any connection lifetime.
    migrator()
        .run_direct(None, conn, false)
        .await
        .map_err(migration_failed)?;
    fill_label_order(conn).await.map_err(map_err)?;
    let newest: Option<i64> =
        sqlx_core::query_scalar::query_scalar("SELECT max(version) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
    let known = MIGRATIONS.last().map_or(0, |&(version, ..)| version);
    if let Some(newest) = newest.filter(|&v| v > known) {
        tracing::warn!(
            schema = ?current,
            newest,
            known,
            "the PostgreSQL schema was migrated by a newer Carewatch; this node runs on it \
             (a rolling upgrade), upgrade it too"
        );
    }
    tracing::debug!(schema = ?current, "postgres schema up to date");
    Ok(())
}

/// A migration's failure as Carewatch's error. The server going away in the
/// middle of one (a restart, a failover: 57P01, a dropped connection) may
/// mend: retryable, as the same failure of any other statement is (it was
/// `Storage`, so a node starting beside a restarting database gave up).
fn migration_failed(e: sqlx_core::migrate::MigrateError) -> Error {
    use sqlx_core::migrate::MigrateError;
    match e {
        MigrateError::Execute(e) => map_err(e),
        MigrateError::ExecuteMigration(e, version) => {
            map_err(e).context(format!("applying migration {version}"))
        }
        other => Error::storage("migrating the PostgreSQL schema failed", other),
    }
}

/// Gives rows labeled before migration 11 their order keys, computed by
/// core. Each update keeps a key a concurrent `set_labels` (on another node)
/// wrote meanwhile. Afterwards the partial index finds nothing: one index
/// probe per start.
async fn fill_label_order(conn: &mut PgConnection) -> std::result::Result<(), sqlx_core::Error> {
    use carewatch_core::labels::{LabelOrder, Labels};
    use sqlx_core::query::query;
    use sqlx_core::row::Row;

    let unset = query(
        "SELECT slc, customer_name, site_name FROM installations WHERE customer_order IS NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    for row in &unset {
        let slc: String = row.try_get(0)?;
        let customer: String = row.try_get(1)?;
        let site: String = row.try_get(2)?;
        // Stored labels were checked when written; unreadable ones sort as
        // unlabeled rather than stop the store from opening.
        let labels = Labels::new(&customer, &site, "", &[]).unwrap_or_default();
        query(
            "UPDATE installations SET customer_order = $2, site_order = $3
             WHERE slc = $1 AND customer_order IS NULL",
        )
        .bind(&slc)
        .bind(labels.order_key(LabelOrder::Customer))
        .bind(labels.order_key(LabelOrder::Site))
        .execute(&mut *conn)
        .await?;
    }
    if !unset.is_empty() {
        tracing::info!(installations = unset.len(), "overview order keys filled in");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx_core::query::query;

    use super::*;

    /// Version 2 counts the installations a version-1 database already has
    /// (resellers without any get zero rows too), and its triggers follow
    /// inserts, health changes, other changes, moves, deletes and new resellers.
    /// A new schema at `version`: (admin connection, connection in the
    /// schema, schema name).
    async fn schema_at(version: i64, tag: &str) -> (PgConnection, PgConnection, String) {
        let url = std::env::var("CAREWATCH_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let schema = format!("cw_test_{secs}_{tag}{}", std::process::id());
        let options = PgConnectOptions::from_str(&url).expect("url");
        let mut admin = options.connect().await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL unreachable at {url} ({e}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` \
                 or set CAREWATCH_TEST_DATABASE_URL=postgres://USER@HOST:PORT/DATABASE"
            )
        });
        query(sqlx_core::sql_str::AssertSqlSafe(format!(
            "CREATE SCHEMA \"{schema}\""
        )))
        .execute(&mut admin)
        .await
        .expect("creates schema");
        let mut conn = options
            .clone()
            .options([("search_path", schema.as_str())])
            .connect()
            .await
            .expect("connects");
        migrator()
            .run_direct(Some(version), &mut conn, false)
            .await
            .expect("earlier version");
        (admin, conn, schema)
    }

    async fn drop_schema(mut admin: PgConnection, conn: PgConnection, schema: &str) {
        let _ = conn.close().await;
        query(sqlx_core::sql_str::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(&mut admin)
        .await
        .expect("drops schema");
    }

    #[test]
    fn a_migration_cut_off_by_the_server_going_away_may_be_retried() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        let cut_off = super::migration_failed(sqlx_core::migrate::MigrateError::ExecuteMigration(
            sqlx_core::Error::Io(reset),
            1,
        ));
        assert!(cut_off.is_retryable(), "{cut_off:?}");
        assert!(cut_off.to_string().contains("migration 1"), "{cut_off}");
        let modified =
            super::migration_failed(sqlx_core::migrate::MigrateError::VersionMismatch(3));
        assert!(!modified.is_retryable(), "{modified:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_totals_start_from_existing_rows_and_follow_every_write() {
        let (admin, mut conn, schema) = schema_at(1, "unitv2").await;
        for sql in [
            "INSERT INTO resellers VALUES ('alpha', 'Alpha', '\\x00', 0), ('beta', 'Beta', '\\x00', 0)",
            "INSERT INTO installations VALUES
                 ('A-1', 'alpha', 'XProtect', '1', NULL, true, 0, 0, NULL, 0, 0, 0, 0),
                 ('A-2', 'alpha', 'XProtect', '1', NULL, true, 0, 0, NULL, 0, 0, 0, 0),
                 ('A-3', 'alpha', 'XProtect', '1', NULL, true, 0, 3, NULL, 0, 0, 0, 0)",
        ] {
            query(sqlx_core::sql_str::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("version-1 rows");
        }

        migrate_on(&mut conn, None).await.expect("version 2");
        let totals = async |conn: &mut PgConnection| -> Vec<(String, i16, i64)> {
            sqlx_core::query_as::query_as(
                "SELECT reseller_id, health, sum(n)::bigint FROM (
                     SELECT reseller_id, health, installations AS n FROM health_totals
                     UNION ALL SELECT reseller_id, health, delta FROM health_total_deltas
                 ) t GROUP BY 1, 2 HAVING sum(n) <> 0 ORDER BY 1, 2",
            )
            .fetch_all(conn)
            .await
            .expect("reads totals")
        };
        assert_eq!(
            totals(&mut conn).await,
            vec![("alpha".into(), 0, 2), ("alpha".into(), 3, 1)],
            "existing installations are counted"
        );
        let rows: i64 = sqlx_core::query_scalar::query_scalar("SELECT count(*) FROM health_totals")
            .fetch_one(&mut conn)
            .await
            .expect("counts rows");
        assert_eq!(rows, 10, "every reseller has a row per health");

        for sql in [
            "INSERT INTO resellers VALUES ('gamma', 'Gamma', '\\x00', 0)",
            "INSERT INTO installations VALUES ('B-1', 'beta', 'Husky', 'M50', NULL, true, 0, 1, NULL, 0, 0, 0, 0)",
            "INSERT INTO installations VALUES ('G-1', 'gamma', 'Husky', 'M50', NULL, true, 0, 4, NULL, 0, 0, 0, 0)",
            "UPDATE installations SET health = 3 WHERE slc = 'A-1'",
            "UPDATE installations SET late = 1, health = health WHERE slc = 'A-2'",
            "UPDATE installations SET reseller_id = 'beta' WHERE slc = 'A-3'",
            "DELETE FROM installations WHERE slc = 'A-2'",
        ] {
            query(sqlx_core::sql_str::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect(sql);
        }
        assert_eq!(
            totals(&mut conn).await,
            vec![
                ("alpha".into(), 3, 1),
                ("beta".into(), 1, 1),
                ("beta".into(), 3, 1),
                ("gamma".into(), 4, 1),
            ]
        );
        // One transaction moving the same pair back and forth: the row is
        // changed once, the rest mostly parked; the next change folds them in.
        query("BEGIN").execute(&mut conn).await.expect("begins");
        for health in [0i16, 3, 0, 3, 0] {
            query("UPDATE installations SET health = $1 WHERE slc = 'A-1'")
                .bind(health)
                .execute(&mut conn)
                .await
                .expect("moves");
        }
        query("COMMIT").execute(&mut conn).await.expect("commits");
        assert_eq!(
            totals(&mut conn).await,
            vec![
                ("alpha".into(), 0, 1),
                ("beta".into(), 1, 1),
                ("beta".into(), 3, 1),
                ("gamma".into(), 4, 1),
            ]
        );
        query("UPDATE installations SET health = 2 WHERE slc = 'A-1'")
            .execute(&mut conn)
            .await
            .expect("moves");
        let parked: Vec<(String, i16)> = sqlx_core::query_as::query_as(
            "SELECT reseller_id, health FROM health_total_deltas ORDER BY 1, 2",
        )
        .fetch_all(&mut conn)
        .await
        .expect("lists deltas");
        assert!(
            parked
                .iter()
                .all(|(r, h)| (r.as_str(), *h) != ("alpha", 0) && (r.as_str(), *h) != ("alpha", 2)),
            "the next change of a pair folds what was parked for it: {parked:?}"
        );
        assert_eq!(totals(&mut conn).await[0], ("alpha".into(), 2, 1));

        drop_schema(admin, conn, &schema).await;
    }

    /// Version 11 gives installations labeled before it their order keys
    /// (core's, accents and case folded) when the store opens; unlabeled
    /// ones get core's unlabeled key from the column default.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn label_order_keys_are_filled_in_for_rows_labeled_before_version_11() {
        use carewatch_core::labels::{LabelOrder, Labels, UNLABELED_ORDER_KEY};

        let (admin, mut conn, schema) = schema_at(10, "unitv11").await;
        for sql in [
            "INSERT INTO resellers (id, name, token_hash, created_at) VALUES ('alpha', 'Alpha', '\\x00', 0)",
            "INSERT INTO installations (slc, reseller_id, product, product_version,
                 subscription_expires_at, consent, registered_at, health, worst_code, servers,
                 unavailable, late, active_conditions, customer_name, site_name)
             VALUES ('A-1', 'alpha', 'XProtect', '1', NULL, true, 0, 0, NULL, 0, 0, 0, 0,
                     'Ärzte am Markt', 'Hafen'),
                    ('A-2', 'alpha', 'XProtect', '1', NULL, true, 0, 0, NULL, 0, 0, 0, 0, '', '')",
        ] {
            query(sqlx_core::sql_str::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect(sql);
        }
        migrate_on(&mut conn, None).await.expect("version 11");
        let keys: Vec<(String, String, String)> = sqlx_core::query_as::query_as(
            "SELECT slc, customer_order, site_order FROM installations ORDER BY slc",
        )
        .fetch_all(&mut conn)
        .await
        .expect("reads keys");
        let labels = Labels::new("Ärzte am Markt", "Hafen", "", &[]).expect("valid");
        assert_eq!(
            keys,
            [
                (
                    "A-1".to_owned(),
                    labels.order_key(LabelOrder::Customer),
                    labels.order_key(LabelOrder::Site)
                ),
                (
                    "A-2".to_owned(),
                    UNLABELED_ORDER_KEY.to_owned(),
                    UNLABELED_ORDER_KEY.to_owned()
                ),
            ]
        );
        drop_schema(admin, conn, &schema).await;
    }
}
