//! `carewatch operator-token`: a new operator token, written straight into
//! the database. The way back in when the token `serve` printed once is lost
//! (a kill before it was printed, a container's logs gone) and no operator
//! is left to issue one through `carewatch admin`.

use std::path::PathBuf;

use carewatch_core::ids::ResellerId;
use carewatch_core::time::{Clock, SystemClock};

use super::CliResult;
use crate::store::{self, OpenOptions, StoreTarget};

#[derive(Debug, clap::Args)]
pub struct OperatorTokenArgs {
    /// The data directory `serve` uses (its SQLite database, unless
    /// --database-url is given).
    #[arg(long, env = "CAREWATCH_DATA_DIR", default_value = "./carewatch-data")]
    data_dir: PathBuf,
    /// The PostgreSQL database the nodes share (postgres://…).
    #[arg(long, env = "CAREWATCH_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The PostgreSQL schema the nodes keep their tables in.
    #[arg(long, env = "CAREWATCH_DATABASE_SCHEMA", requires = "database_url")]
    database_schema: Option<String>,
    /// The operator whose token is replaced (added if there is none).
    #[arg(long, default_value = "admin")]
    name: String,
}

pub async fn run(args: OperatorTokenArgs) -> CliResult {
    let name = ResellerId::new(&args.name)?;
    let db = args.data_dir.join("carewatch.db");
    let target = StoreTarget::of_node(args.database_url.as_deref(), &db);
    // Never a new, empty database: a token in it would open nothing.
    let options = OpenOptions {
        schema: args.database_schema.as_deref(),
        application_name: Some("carewatch operator-token"),
        existing: true,
    };
    let store = store::open_store(&target, &options).await.map_err(|e| match e {
        carewatch_core::Error::NotFound { what } => format!(
            "{what} not found: give the --data-dir `serve` uses, or its --database-url (and --database-schema)"
        )
        .into(),
        other => Box::<dyn std::error::Error + Send + Sync>::from(other),
    })?;
    let issued =
        carewatch_core::replace_operator_token(store.as_ref(), &name, SystemClock.now()).await?;
    eprintln!(
        "operator {name}: new token in {}; the previous one no longer works",
        target.describe()
    );
    println!("{}", &*issued.token);
    Ok(())
}
