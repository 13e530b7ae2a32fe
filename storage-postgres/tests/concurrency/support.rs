//! Times from a fixed start, ids, several nodes on one schema, and installations.

use std::sync::Arc;

use carewatch_core::ids::{RecordingServerId, Slc};
use carewatch_core::installation::{Installation, Product};
use carewatch_core::store::Store;
use carewatch_core::time::Timestamp;
use carewatch_storage_postgres::PostgresStore;

use crate::common::{self, Schema};

pub(crate) const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);

pub(crate) fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(START.as_millis() + ms)
}

pub(crate) fn rs(id: &str) -> RecordingServerId {
    RecordingServerId::new(id).expect("server id")
}

pub(crate) fn slc(n: u32) -> Slc {
    Slc::new(&format!("M01-C01-{n:04}")).expect("slc")
}

pub(crate) async fn nodes(schema: &Schema, n: usize) -> Vec<Arc<PostgresStore>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Arc::new(
            schema.open_store(&schema.next_application_name()).await,
        ));
    }
    out
}

pub(crate) async fn installations(store: &PostgresStore, count: u32) -> Vec<Slc> {
    let reseller = common::create_alpha_reseller(store, START).await;
    let mut out = Vec::new();
    for n in 1..=count {
        let installation = Installation {
            slc: slc(n),
            reseller: reseller.clone(),
            product: Product::new("XProtect Corporate", "2016 R3").expect("product"),
            subscription_expires_at: None,
            consent: true,
            registered_at: START,
        };
        store
            .register_installation(&installation)
            .await
            .expect("registers");
        out.push(installation.slc);
    }
    out
}
