//! Opening a store from what a user types: a SQLite path or a PostgreSQL URL,
//! with the master key that goes with it. `carewatch serve` and the Python
//! package both open stores here, so they agree on where keys live.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use carewatch_core::Config;
use carewatch_core::error::{Error, Result};
use carewatch_core::seal::MasterKey;
use carewatch_core::seal::key_file::{self, KeySource, MASTER_KEY_FILE};
use carewatch_core::store::Store;
use carewatch_storage_postgres::{PostgresConfig, PostgresStore};
use carewatch_storage_sqlite::SqliteStore;

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreTarget<'a> {
    /// A SQLite database file (created if missing).
    Sqlite(&'a Path),
    /// A PostgreSQL URL (`postgres://…`).
    Postgres(&'a str),
}

impl<'a> StoreTarget<'a> {
    /// A `postgres://` or `postgresql://` URL (the scheme in any case),
    /// else a SQLite path. Any other URL is `InvalidInput`, naming only its
    /// scheme: opened as a file name, it failed as a retryable storage error
    /// whose message carried the URL's password.
    pub fn parse(target: &'a Path) -> Result<Self> {
        let Some(text) = target.to_str() else {
            return Ok(Self::Sqlite(target));
        };
        match text.split_once("://") {
            Some((scheme, _))
                if scheme.eq_ignore_ascii_case("postgres")
                    || scheme.eq_ignore_ascii_case("postgresql") =>
            {
                Ok(Self::Postgres(text))
            }
            Some((scheme, _))
                if !scheme.is_empty()
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
            {
                Err(Error::InvalidInput {
                    field: "database",
                    reason: format!(
                        "a {scheme}:// URL is not a database Carewatch opens: give a \
                         postgres:// (or postgresql://) URL, or a SQLite file path"
                    ),
                })
            }
            _ => Ok(Self::Sqlite(target)),
        }
    }

    /// The database of a node: PostgreSQL at `database_url` if given, else
    /// SQLite in `db` (the data directory's `carewatch.db`).
    pub fn of_node(database_url: Option<&'a str>, db: &'a Path) -> Self {
        match database_url {
            Some(url) => Self::Postgres(url),
            None => Self::Sqlite(db),
        }
    }

    /// A short description for logs and `repr`, without credentials.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("SQLite {}", path.display()),
            Self::Postgres(_) => "PostgreSQL".to_owned(),
        }
    }
}

/// How to open a store.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions<'a> {
    /// PostgreSQL schema to keep the tables in (created if missing).
    pub schema: Option<&'a str>,
    /// PostgreSQL `application_name`, shown in `pg_stat_activity`.
    pub application_name: Option<&'a str>,
    /// Only a database Carewatch already set up: `NotFound` rather than a
    /// new, empty one (a missing SQLite file, a schema without its tables).
    pub existing: bool,
}

/// Opens (and migrates) the store at `target`.
pub async fn open_store(
    target: &StoreTarget<'_>,
    options: &OpenOptions<'_>,
) -> Result<Arc<dyn Store>> {
    match target {
        StoreTarget::Postgres(url) => {
            let mut config = PostgresConfig::from_url(url)?;
            if let Some(name) = options.application_name {
                config = config.application_name(name);
            }
            if let Some(schema) = options.schema {
                config = config.schema(schema)?;
            }
            Ok(Arc::new(if options.existing {
                PostgresStore::open_existing(config).await?
            } else {
                PostgresStore::open(config).await?
            }))
        }
        StoreTarget::Sqlite(_) if options.schema.is_some() => Err(Error::InvalidInput {
            field: "schema",
            reason: "only a PostgreSQL database has schemas".into(),
        }),
        StoreTarget::Sqlite(path) if options.existing && !path.is_file() => Err(Error::NotFound {
            what: format!("a Carewatch database at {}", path.display()),
        }),
        StoreTarget::Sqlite(path) => {
            // A new database's directory is made, as `serve` makes its data
            // directory: missing, SQLite's refusal read as a retryable
            // storage error that no retry could mend.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| {
                    Error::storage(format!("cannot create the directory {}", dir.display()), e)
                })?;
            }
            Ok(Arc::new(SqliteStore::open(path).await?))
        }
    }
}

/// The master key file of the SQLite database at `database`: beside it.
pub fn key_file_beside(database: &Path) -> PathBuf {
    match database.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(MASTER_KEY_FILE),
        _ => Path::new(".").join(MASTER_KEY_FILE),
    }
}

/// What [`master_key`] does when the key file is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Make a new random key (the first start of a new installation).
    Create,
    /// Refuse: during a master-key rotation (earlier keys given) a new
    /// random key would receive every re-sealed secret and be in no backup.
    Refuse,
}

/// The master key for a store: `given` (hex) if any; else, for SQLite, the
/// `master.key` file in `key_dir` (created on first use when `if_missing`
/// allows it). PostgreSQL nodes must all use the same key, so there it must
/// be given or found in `key_dir`.
pub fn master_key(
    target: &StoreTarget<'_>,
    given: Option<&str>,
    key_dir: Option<&Path>,
    if_missing: IfMissing,
) -> Result<(MasterKey, KeySource)> {
    if let Some(hex) = given {
        return Ok((MasterKey::from_hex(hex.trim())?, KeySource::Loaded));
    }
    let path = match (target, key_dir) {
        (_, Some(dir)) => dir.join(MASTER_KEY_FILE),
        (StoreTarget::Sqlite(path), None) => key_file_beside(path),
        (StoreTarget::Postgres(_), None) => {
            return Err(Error::InvalidInput {
                field: "master_key",
                reason: "required with PostgreSQL: pass the hex key the other nodes use (their master.key)".into(),
            });
        }
    };
    match if_missing {
        IfMissing::Create => key_file::load_or_create(&path),
        IfMissing::Refuse => match key_file::load(&path) {
            Ok(key) => Ok((key, KeySource::Loaded)),
            Err(e) => Err(Error::InvalidInput {
                field: "master_key",
                reason: format!(
                    "while earlier master keys are given the current key must be in place \
                     (it is not made up during a rotation): {e}"
                ),
            }),
        },
    }
}

/// [`Config::check_master_keys`]; when it refuses the key, the key file
/// `created` (made by [`master_key`] a moment ago, for a database that
/// already has a key) is removed again, so the next start does not find a
/// wrong key in place. Kept on any other failure: the check may have been
/// stored under it before the failure (a connection lost at COMMIT), and
/// then it is the database's key.
pub async fn check_master_keys(
    config: &Config,
    store: &dyn Store,
    created: Option<&Path>,
) -> Result<()> {
    let checked = config.check_master_keys(store).await;
    if let (Err(Error::InvalidInput { .. }), Some(file)) = (&checked, created) {
        let _ = std::fs::remove_file(file);
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_postgres_and_everything_else_is_a_sqlite_path() {
        let parse = |text| StoreTarget::parse(Path::new(text)).expect("a target");
        assert_eq!(
            parse("postgres://u@h/db"),
            StoreTarget::Postgres("postgres://u@h/db")
        );
        assert_eq!(
            parse("postgresql://h/db"),
            StoreTarget::Postgres("postgresql://h/db")
        );
        assert_eq!(
            parse("POSTGRES://h/db"),
            StoreTarget::Postgres("POSTGRES://h/db")
        );
        assert_eq!(
            parse("data/carewatch.db"),
            StoreTarget::Sqlite(Path::new("data/carewatch.db"))
        );
        // Another URL is refused, naming its scheme and never its password
        // (it was opened as a SQLite file name).
        for url in [
            "postgresql+psycopg://app:s3cret@db/cw",
            "mysql://app:s3cret@db/cw",
        ] {
            let refused = StoreTarget::parse(Path::new(url)).expect_err("not a database");
            let said = refused.to_string();
            assert!(matches!(refused, Error::InvalidInput { .. }), "{said}");
            assert!(!said.contains("s3cret") && said.contains("://"), "{said}");
        }
        assert_eq!(
            StoreTarget::Postgres("postgres://secret@h").describe(),
            "PostgreSQL"
        );
    }

    #[test]
    fn postgres_needs_a_master_key_and_sqlite_keeps_one_beside_the_database() {
        let err = master_key(
            &StoreTarget::Postgres("postgres://h/db"),
            None,
            None,
            IfMissing::Create,
        )
        .unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        let temp = tempfile::tempdir().unwrap();
        let db = temp.path().join("carewatch.db");
        let (first, source) =
            master_key(&StoreTarget::Sqlite(&db), None, None, IfMissing::Create).unwrap();
        assert_eq!(source, KeySource::Created);
        let (again, source) =
            master_key(&StoreTarget::Sqlite(&db), None, None, IfMissing::Create).unwrap();
        assert_eq!(source, KeySource::Loaded);
        assert_eq!(first.to_hex(), again.to_hex());
    }

    #[test]
    fn a_rotation_never_makes_up_the_current_key() {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path();
        let db = dir.join("carewatch.db");
        let target = StoreTarget::Sqlite(&db);
        let err = master_key(&target, None, None, IfMissing::Refuse).unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert!(err.to_string().contains("must be in place"), "{err}");
        assert!(!dir.join(MASTER_KEY_FILE).exists(), "no key made up");
        let (created, _) = master_key(&target, None, None, IfMissing::Create).unwrap();
        let (loaded, source) = master_key(&target, None, None, IfMissing::Refuse).unwrap();
        assert_eq!(
            (loaded.to_hex(), source),
            (created.to_hex(), KeySource::Loaded)
        );
    }
}
