//! How to reach the database: [`PostgresConfig`] and the default pool limits.

use std::str::FromStr;
use std::time::Duration;

use carewatch_core::{Error, Result};
use sqlx_postgres::{PgConnectOptions, PgPoolOptions};

use crate::connection::PostgresStore;

/// Most connections a store opens by default.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long a call waits for a connection by default before it fails with
/// `StorageUnavailable`.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The `application_name` a store's connections carry unless told otherwise.
pub const DEFAULT_APPLICATION_NAME: &str = "carewatch";

/// How to reach the database, and how many connections to keep.
#[derive(Clone)]
pub struct PostgresConfig {
    connect: PgConnectOptions,
    pub(crate) schema: Option<String>,
    max_connections: u32,
    acquire_timeout: Duration,
}

impl std::fmt::Debug for PostgresConfig {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.connect.get_host())
            .field("port", &self.connect.get_port())
            .field("username", &self.connect.get_username())
            .field("database", &self.connect.get_database())
            .field("application_name", &self.connect.get_application_name())
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl PostgresConfig {
    /// Settings from a `postgres://` URL, with the default pool limits.
    pub fn from_url(url: &str) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url).map_err(|e| Error::InvalidInput {
            field: "PostgreSQL URL",
            reason: e.to_string(),
        })?;
        Ok(Self::new(connect))
    }

    /// Settings from connect options, with the default pool limits.
    pub fn new(connect: PgConnectOptions) -> Self {
        let connect = match connect.get_application_name() {
            Some(_) => connect,
            None => connect.application_name(DEFAULT_APPLICATION_NAME),
        };
        Self {
            connect,
            schema: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
        }
    }

    /// Keeps the tables in this schema (created if missing): the connections'
    /// `search_path` is set to it. Lower-case ASCII letters, digits and `_`,
    /// not starting with a digit, at most 63 bytes.
    pub fn schema(mut self, name: &str) -> Result<Self> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(Error::InvalidInput {
                field: "PostgreSQL schema",
                reason: format!(
                    "{name:?}: use 1 to 63 lower-case letters, digits and _, not starting with a digit"
                ),
            });
        }
        self.schema = Some(name.to_owned());
        Ok(self)
    }

    /// The `application_name` of the connections (shows in `pg_stat_activity`).
    pub fn application_name(mut self, name: &str) -> Self {
        self.connect = self.connect.application_name(name);
        self
    }

    /// Most connections to open (at least 1).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// How long a call waits for a connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The connect options, with the schema in the `search_path`.
    pub fn connect_options(&self) -> PgConnectOptions {
        match &self.schema {
            Some(schema) => self
                .connect
                .clone()
                .options([("search_path", schema.as_str())]),
            None => self.connect.clone(),
        }
    }

    /// The pool options: the limits, and a liveness ping for connections
    /// that were idle (so a restarted server is noticed before a call fails).
    pub fn pool_options(&self) -> PgPoolOptions {
        PostgresStore::pool_options()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
    }
}
