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
];

fn migrator() -> Migrator {
    Migrator::with_migrations(
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
    )
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
        .map_err(|e| match e {
            sqlx_core::migrate::MigrateError::Execute(e) => map_err(e),
            other => Error::storage("migrating the PostgreSQL schema failed", other),
        })?;
    tracing::debug!(schema = ?current, "postgres schema up to date");
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
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_totals_start_from_existing_rows_and_follow_every_write() {
        let url = std::env::var("CAREWATCH_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let schema = format!("cw_test_{secs}_unitv2{}", std::process::id());
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
            .run_direct(Some(1), &mut conn, false)
            .await
            .expect("version 1");
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

        let _ = conn.close().await;
        query(sqlx_core::sql_str::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(&mut admin)
        .await
        .expect("drops schema");
    }
}
