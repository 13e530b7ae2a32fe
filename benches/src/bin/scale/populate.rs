//! The data directory: populated once (and reused while complete), refreshed
//! before each run, and watched for the restart catch-up sweep.

use super::*;
use carewatch_cli::tls::{TlsIdentity, write_private};
use carewatch_core::auth::{self, Principal};
use carewatch_core::ids::ResellerId;
use carewatch_core::liveness::{LivenessMark, MarkReason};
use carewatch_core::seal::key_file;
use carewatch_core::seal::{InstallationKey, KeyId};
use carewatch_core::store::Store;
use carewatch_core::time::{Clock, SystemClock};
use carewatch_storage_sqlite::SqliteStore;
use futures::{StreamExt, TryStreamExt};

/// Uses the data directory if complete, populates it otherwise. Returns how
/// long population took (now or when it was done) and whether it was now.
pub(crate) async fn prepare(
    dir: &Path,
    fleet: &Fleet,
    fresh: bool,
) -> Result<(Duration, bool), BoxError> {
    if !fresh && let Ok(marker) = std::fs::read_to_string(dir.join(COMPLETE)) {
        let field = |name: &str| {
            marker
                .lines()
                .filter_map(|l| l.split_once(' '))
                .find(|(k, _)| *k == name)
                .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        };
        if field("servers") != Some(fleet.server_count() as u64)
            || field("installations") != Some(fleet.installations.len() as u64)
        {
            return Err(format!(
                "{} holds another fleet; use --fresh or another --data-dir",
                dir.display()
            )
            .into());
        }
        let took = field("populated_in_ms").ok_or("damaged marker file")?;
        return Ok((Duration::from_millis(took), false));
    }
    for name in POPULATED_FILES {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    std::fs::create_dir_all(dir)?;
    let took = populate(dir, fleet).await?;
    std::fs::write(
        dir.join(COMPLETE),
        format!(
            "servers {}\ninstallations {}\npopulated_in_ms {}\n",
            fleet.server_count(),
            fleet.installations.len(),
            took.as_millis()
        ),
    )?;
    Ok((took, true))
}

/// Writes the fleet into a new data directory through the public store API,
/// with everything `carewatch serve` would otherwise create on first start.
async fn populate(dir: &Path, fleet: &Fleet) -> Result<Duration, BoxError> {
    let began = Instant::now();
    let (master_key, _) = key_file::load_or_create(&dir.join(MASTER_KEY_FILE))?;
    TlsIdentity::self_signed_in(dir, &[])?;
    let store = SqliteStore::open(dir.join(DATABASE)).await?;
    // The operator serve would create on first start, so every start is alike.
    let operator = ResellerId::new(OPERATOR)?;
    let operator_token = auth::issue_token(&Principal::Operator(operator.clone()));
    store
        .set_operator_token(&operator, &operator_token.hash)
        .await?;
    write_private(&dir.join(OPERATOR_TOKEN), &operator_token.token)?;

    let reseller_token = auth::issue_token(&Principal::Reseller(fleet.reseller.clone()));
    let at = SystemClock.now();
    fleet.seed_at(&store, &reseller_token.hash, at).await?;
    println!(
        "seeded {} installations, {} servers in {:.1} s",
        thousands(fleet.installations.len()),
        thousands(fleet.server_count()),
        began.elapsed().as_secs_f64()
    );

    let keys_began = Instant::now();
    let store_ref = &store;
    let master_key = &master_key;
    futures::stream::iter(&fleet.installations)
        .map(Ok)
        .try_for_each_concurrent(CONCURRENT_WRITES, |installation| async move {
            let key = InstallationKey::generate(KeyId::new(1));
            let wrapped = master_key.wrap(&installation.slc, &key);
            store_ref
                .add_installation_key(&installation.slc, &wrapped, at)
                .await
        })
        .await?;
    println!(
        "issued {} installation keys in {:.1} s",
        thousands(fleet.installations.len()),
        keys_began.elapsed().as_secs_f64()
    );
    write_private(&dir.join(RESELLER_TOKEN), &reseller_token.token)?;
    drop(store);
    Ok(began.elapsed())
}

/// A new heartbeat from every live server and a liveness mark, now.
pub(crate) async fn refresh(
    dir: &Path,
    fleet: &Fleet,
    interval: Duration,
) -> Result<Duration, BoxError> {
    let began = Instant::now();
    let store = SqliteStore::open(dir.join(DATABASE)).await?;
    // Later than every earlier refresh's, and than seeding's 1 and 2.
    fleet.refresh(&store, interval).await?;
    // The server that starts next must find the fleet received until now.
    store
        .mark_alive(&LivenessMark {
            node: NODE_ID.to_owned(),
            at: SystemClock.now(),
            reason: MarkReason::Running,
            tolerance: Duration::from_secs(3),
        })
        .await?;
    drop(store);
    Ok(began.elapsed())
}

/// Polls the database (read only, through the store API) until no server is
/// due for an availability check; yields the time from now until then, or
/// `None` if the store failed.
pub(crate) async fn watch_catch_up(
    dir: &Path,
) -> Result<tokio::task::JoinHandle<Option<Duration>>, BoxError> {
    let store = SqliteStore::open(dir.join(DATABASE)).await?;
    let began = Instant::now();
    Ok(tokio::spawn(async move {
        loop {
            match store.due_servers(SystemClock.now(), 1).await {
                Ok(due) if due.is_empty() => return Some(began.elapsed()),
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                Err(_) => return None,
            }
        }
    }))
}
