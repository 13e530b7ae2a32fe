//! The bounds on what one reseller keeps (`store::limits`), held by the
//! store inside the transaction that stores, against concurrent requests
//! on two nodes.

use std::sync::Arc;

use super::notifications::{channel, window};
use super::{secs, t};
use crate::error::{Error, Result};
use crate::ids::ResellerId;
use crate::store::Store;
use crate::store::limits::{
    MAX_CHANNELS_PER_RESELLER, MAX_LIVE_API_TOKENS_PER_RESELLER, MAX_WINDOWS_PER_SCOPE,
};
use crate::team::{ApiTokenRecord, Login, hash_secret};
use crate::testing::TestBackend;
use crate::testing::fixture::Fixture;

/// How many more than the bound each burst asks for.
const BEYOND: usize = 10;

/// Runs `make(n)` for n in 0..count at once, alternately on each store,
/// and returns how many were stored; every refusal must be the bound's
/// `InvalidInput` on `field`.
async fn burst<F, Fut>(stores: [&Arc<dyn Store>; 2], count: usize, field: &str, make: F) -> usize
where
    F: Fn(Arc<dyn Store>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let results =
        futures::future::join_all((0..count).map(|n| make(Arc::clone(stores[n % 2]), n))).await;
    let mut stored = 0;
    for result in results {
        match result {
            Ok(()) => stored += 1,
            Err(Error::InvalidInput { field: f, .. }) if f == field => {}
            Err(e) => panic!("{field}: not the bound's refusal: {e:?}"),
        }
    }
    stored
}

fn token(n: usize, reseller: &ResellerId) -> ApiTokenRecord {
    ApiTokenRecord {
        id: format!("tok-{reseller}-{n}"),
        reseller: reseller.clone(),
        name: format!("token {n}"),
        hash: hash_secret(&format!("API token {n} of {reseller}")),
        created_at: t(10),
        created_by: Login::new(&format!("admin@{reseller}.example")).expect("login"),
        revoked_at: None,
        expires_at: None,
    }
}

/// Found by reading the bound on windows: it was counted before the insert,
/// outside its transaction, so requests at once all passed it; channels and
/// API tokens had no bound (every channel multiplies the notifier's work
/// per change, for every reseller). Bursts of creates on two nodes store
/// exactly as many as the bound, refuse the rest with `InvalidInput`, leave
/// another reseller's room alone, and a deleted channel or revoked token
/// frees a place.
pub(crate) async fn reseller_bounds_hold_against_concurrent_creates(
    backend: &(impl TestBackend + ?Sized),
) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let other_node = db.open().await;
    let stores = [&fx.store, &other_node];
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let site = fx.site("alpha", "M01-C01-0001").await;

    // Channels: ids 1.. for alpha, 1000.. for beta.
    let stored = burst(
        stores,
        MAX_CHANNELS_PER_RESELLER + BEYOND,
        "channels",
        |store, n| {
            let record = channel(n as u64 + 1, &alpha, t(10));
            async move { store.create_channel(&record).await }
        },
    )
    .await;
    assert_eq!(stored, MAX_CHANNELS_PER_RESELLER, "channels stored");
    let channels = fx.store.channels(Some(&alpha)).await.expect("channels");
    assert_eq!(channels.len(), MAX_CHANNELS_PER_RESELLER);
    fx.store
        .create_channel(&channel(1000, &beta, t(10)))
        .await
        .expect("beta has room of its own");
    fx.store
        .delete_channel(&alpha, &channels[0].id, t(20))
        .await
        .expect("deleted");
    fx.store
        .create_channel(&channel(2000, &alpha, t(30)))
        .await
        .expect("a deleted channel frees its place");

    // API tokens in use.
    let stored = burst(
        stores,
        MAX_LIVE_API_TOKENS_PER_RESELLER + BEYOND,
        "API tokens",
        |store, n| {
            let record = token(n, &alpha);
            async move { store.create_api_token(&record).await }
        },
    )
    .await;
    assert_eq!(
        stored, MAX_LIVE_API_TOKENS_PER_RESELLER,
        "API tokens stored"
    );
    let tokens = fx.store.api_tokens(&alpha).await.expect("tokens");
    assert_eq!(tokens.len(), MAX_LIVE_API_TOKENS_PER_RESELLER);
    fx.store
        .create_api_token(&token(0, &beta))
        .await
        .expect("beta has room of its own");
    fx.store
        .revoke_api_token(&alpha, &tokens[0].id, t(20))
        .await
        .expect("revoked");
    fx.store
        .create_api_token(&token(5000, &alpha))
        .await
        .expect("a revoked token frees its place");

    // Maintenance windows to come over one installation.
    let stored = burst(
        stores,
        MAX_WINDOWS_PER_SCOPE + BEYOND,
        "maintenance window",
        |store, n| {
            let record = window(
                n as u64 + 1,
                &alpha,
                Some(&site.slc),
                t(3600 + 60 * n as u64),
                secs(600),
                None,
            );
            async move { store.create_maintenance(&record).await }
        },
    )
    .await;
    assert_eq!(stored, MAX_WINDOWS_PER_SCOPE, "windows stored");
    let windows = fx
        .store
        .maintenance_windows(Some(&alpha))
        .await
        .expect("windows");
    assert_eq!(windows.len(), MAX_WINDOWS_PER_SCOPE);
    fx.store
        .create_maintenance(&window(900, &alpha, None, t(3600), secs(600), None))
        .await
        .expect("all installations are a scope of their own");
}
