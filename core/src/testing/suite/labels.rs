//! What a reseller calls its installations: stored, shown on every row and
//! detail, searched (Unicode, any case), told on the change feed, and
//! never set on another reseller's installation.

use std::sync::Arc;

use super::team::member;
use super::{refused, slc};
use crate::error::Error;
use crate::feed::{Change, EventId};
use crate::labels::Labels;
use crate::store::{OverviewQuery, Store};
use crate::team::Role;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};

fn labels(customer: &str, site: &str, notes: &str, tags: &[&str]) -> Labels {
    let tags: Vec<String> = tags.iter().map(|t| (*t).to_owned()).collect();
    Labels::new(customer, site, notes, &tags).expect("valid labels")
}

/// The SLCs an overview of every health lists for `search`, in order.
async fn found(fx: &Fixture, reseller: &crate::ids::ResellerId, search: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = fx
            .carewatch
            .overview(
                reseller,
                &OverviewQuery {
                    include_healthy: true,
                    search: Some(search.into()),
                    page_size: 1,
                    after,
                    ..OverviewQuery::default()
                },
            )
            .await
            .expect("overview");
        out.extend(page.rows.iter().map(|r| r.slc.to_string()));
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

async fn label_events(store: &Arc<dyn Store>) -> Vec<String> {
    store
        .changes(EventId(0), 10_000)
        .await
        .expect("changes")
        .into_iter()
        .filter(|e| e.change == Change::Labels)
        .map(|e| format!("{} {}", e.reseller, e.slc))
        .collect()
}

pub(crate) async fn labels_are_stored_shown_and_told(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-100-01").await;
    let admin = member(&fx, &site.reseller, "admin", Role::Admin, START).await;
    let detail = fx
        .carewatch
        .installation(&site.reseller, &site.slc)
        .await
        .expect("detail");
    assert_eq!(detail.labels, Labels::default(), "none until set");

    let named = labels(
        "Müller GmbH",
        "Hafen Nord",
        "Key at the gate.\nAsk for Jan.",
        &["vip", "harbour"],
    );
    fx.carewatch
        .set_labels(&admin, &site.slc, &named)
        .await
        .expect("labels set");
    let detail = fx
        .carewatch
        .installation(&site.reseller, &site.slc)
        .await
        .expect("detail");
    assert_eq!(detail.labels, named);
    assert_eq!(detail.labels.tags(), ["harbour", "vip"]);
    let page = fx
        .carewatch
        .overview(
            &site.reseller,
            &OverviewQuery {
                include_healthy: true,
                ..OverviewQuery::default()
            },
        )
        .await
        .expect("overview");
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.rows[0].labels, named, "the row shows them too");
    assert_eq!(
        label_events(&fx.store).await,
        ["alpha M01-C01-100-01"],
        "one labels event, in the same transaction"
    );

    // Set again: replaced, not merged; cleared with the default.
    let renamed = labels("Müller & Söhne", "", "", &[]);
    fx.carewatch
        .set_labels(&admin, &site.slc, &renamed)
        .await
        .expect("renamed");
    let detail = fx
        .carewatch
        .installation(&site.reseller, &site.slc)
        .await
        .expect("detail");
    assert_eq!(detail.labels, renamed);
    fx.carewatch
        .set_labels(&admin, &site.slc, &Labels::default())
        .await
        .expect("cleared");
    let detail = fx
        .carewatch
        .installation(&site.reseller, &site.slc)
        .await
        .expect("detail");
    assert_eq!(detail.labels, Labels::default());
    assert_eq!(label_events(&fx.store).await.len(), 3);
}

pub(crate) async fn overview_searches_labels_in_any_case(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let harbour = fx.site("alpha", "M01-C01-200-01").await;
    let depot = fx.site("alpha", "M01-C01-200-02").await;
    let bare = fx.site("alpha", "M01-C01-200-03").await;
    let other = fx.site("beta", "M01-C01-200-04").await;
    let admin = member(&fx, &harbour.reseller, "admin", Role::Admin, START).await;
    let other_admin = member(&fx, &other.reseller, "admin@beta", Role::Admin, START).await;
    fx.carewatch
        .set_labels(
            &admin,
            &harbour.slc,
            &labels("Müller GmbH", "Hafen", "secret-note", &["nord"]),
        )
        .await
        .expect("labels");
    fx.carewatch
        .set_labels(
            &admin,
            &depot.slc,
            &labels("Schmidt AG", "Depot Müllheim", "", &["süd", "vip"]),
        )
        .await
        .expect("labels");
    // Beta's customer has the same name: never in alpha's results.
    fx.carewatch
        .set_labels(
            &other_admin,
            &other.slc,
            &labels("Müller GmbH", "", "", &[]),
        )
        .await
        .expect("labels");
    let alpha = &harbour.reseller;
    let both = ["M01-C01-200-01", "M01-C01-200-02"];
    assert_eq!(found(&fx, alpha, "müller").await, ["M01-C01-200-01"]);
    assert_eq!(
        found(&fx, alpha, "MÜLL").await,
        both,
        "customer or site, Unicode upper case"
    );
    assert_eq!(found(&fx, alpha, "hafen").await, ["M01-C01-200-01"]);
    assert_eq!(found(&fx, alpha, "VIP").await, ["M01-C01-200-02"], "a tag");
    assert_eq!(found(&fx, alpha, "süd").await, ["M01-C01-200-02"]);
    assert_eq!(
        found(&fx, alpha, "200-03").await,
        [bare.slc.to_string()],
        "the SLC of an installation without labels"
    );
    assert_eq!(
        found(&fx, alpha, "c01-200").await.len(),
        3,
        "SLCs still match with labels set"
    );
    assert!(
        found(&fx, alpha, "secret-note").await.is_empty(),
        "notes are not searched"
    );
    assert_eq!(
        found(&fx, &other.reseller, "müller").await,
        [other.slc.to_string()]
    );
    // Renamed: the old name no longer finds it.
    fx.carewatch
        .set_labels(&admin, &harbour.slc, &labels("Weber KG", "", "", &[]))
        .await
        .expect("renamed");
    assert_eq!(found(&fx, alpha, "müll").await, ["M01-C01-200-02"]);
    assert_eq!(found(&fx, alpha, "weber").await, ["M01-C01-200-01"]);
}

pub(crate) async fn labels_are_set_only_by_the_owners_admin(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let site = fx.site("alpha", "M01-C01-300-01").await;
    let other = fx.reseller("beta").await;
    let intruder = member(&fx, &other, "admin@beta", Role::Admin, START).await;
    let viewer = member(&fx, &site.reseller, "viewer", Role::Viewer, START).await;
    let named = labels("Intruder Ltd", "", "", &[]);
    let err = refused(
        fx.carewatch.set_labels(&intruder, &site.slc, &named).await,
        "another reseller's installation",
    );
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let missing = refused(
        fx.carewatch
            .set_labels(&intruder, &slc("M01-C01-300-99"), &named)
            .await,
        "a missing installation",
    );
    assert_eq!(
        err.to_string().replace("300-01", "300-99"),
        missing.to_string(),
        "another reseller's reads exactly like a missing one"
    );
    let err = refused(
        fx.carewatch.set_labels(&viewer, &site.slc, &named).await,
        "a viewer",
    );
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    let detail = fx
        .carewatch
        .installation(&site.reseller, &site.slc)
        .await
        .expect("detail");
    assert_eq!(detail.labels, Labels::default(), "nothing changed");
    assert!(label_events(&fx.store).await.is_empty(), "nothing told");
}
