//! The overview sorted by customer or by site: names A to Z ignoring case
//! and accents, installations without the name after, the unlabeled last,
//! ties by SLC; paged by a keyset cursor of its own order, filtered like the
//! worst-first overview, and never showing another reseller's installation.

use super::team::member;
use super::{refused, slc};
use crate::error::Error;
use crate::health::Health;
use crate::ids::ResellerId;
use crate::labels::{LabelOrder, Labels};
use crate::store::{OverviewOrder, OverviewQuery, PageCursor};
use crate::team::Role;
use crate::testing::TestBackend;
use crate::testing::fixture::{Fixture, START};

/// The SLC endings (after `M01-C01-400-`) of every page of `query`, read
/// `page_size` rows at a time, each next token passed through its text form.
async fn listed(
    fx: &Fixture,
    reseller: &ResellerId,
    query: &OverviewQuery,
    page_size: u32,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = query.after.clone();
    loop {
        let page = fx
            .carewatch
            .overview(
                reseller,
                &OverviewQuery {
                    page_size,
                    after,
                    ..query.clone()
                },
            )
            .await
            .expect("overview");
        assert!(page.rows.len() <= page_size as usize);
        out.extend(
            page.rows
                .iter()
                .map(|r| r.slc.as_str().trim_start_matches("M01-C01-400-").to_owned()),
        );
        match page.next {
            Some(next) => {
                assert_eq!(next.order(), query.order, "a cursor of the query's order");
                after = Some(PageCursor::from_token(&next.to_token()).expect("token parses"));
            }
            None => return out,
        }
    }
}

fn sorted(order: OverviewOrder) -> OverviewQuery {
    OverviewQuery {
        include_healthy: true,
        order,
        ..OverviewQuery::default()
    }
}

pub(crate) async fn overview_sorts_by_customer_and_site(backend: &(impl TestBackend + ?Sized)) {
    let db = backend.fresh().await;
    let fx = Fixture::open(db.as_ref()).await;
    let alpha = fx.reseller("alpha").await;
    let beta = fx.reseller("beta").await;
    let admin = member(&fx, &alpha, "admin", Role::Admin, START).await;
    let beta_admin = member(&fx, &beta, "admin@beta", Role::Admin, START).await;
    // (SLC ending, customer, site); SLC order deliberately unlike name order.
    let named = [
        ("00", "", "zeche"),
        ("01", "Zoo Berlin", "Alpha"),
        ("02", "ärzte am markt", "Zentrale"),
        ("03", "Arzte am Markt", "Filiale"),
        ("04", "Bäcker", ""),
        ("05", "", "Aachen"),
        ("06", "", ""),
        ("07", "bäcker", ""),
        ("08", "", ""),
        ("09", "Müller", "Hafen"),
    ];
    let mut sites = Vec::new();
    for (end, customer, site) in named {
        let installation = fx.site("alpha", &format!("M01-C01-400-{end}")).await;
        let labels = Labels::new(customer, site, "", &[]).expect("valid labels");
        fx.carewatch
            .set_labels(&admin, &installation.slc, &labels)
            .await
            .expect("labels");
        sites.push(installation);
    }
    // Beta's name sorts first: never in alpha's lists, nor alpha's in beta's.
    let other = fx.site("beta", "M01-C01-400-10").await;
    fx.carewatch
        .set_labels(
            &beta_admin,
            &other.slc,
            &Labels::new("AAA First", "AAA", "", &[]).expect("valid"),
        )
        .await
        .expect("labels");

    // Written out by hand: the rule, not its implementation.
    let by_customer = ["03", "02", "04", "07", "09", "01", "05", "00", "06", "08"];
    let by_site = ["05", "01", "03", "09", "00", "02", "04", "07", "06", "08"];
    let worst_first = ["00", "01", "02", "03", "04", "05", "06", "07", "08", "09"];
    for page_size in [1, 2, 3, 4, 500] {
        for (order, expected) in [
            (OverviewOrder::Customer, by_customer),
            (OverviewOrder::Site, by_site),
            (OverviewOrder::WorstFirst, worst_first),
        ] {
            assert_eq!(
                listed(&fx, &alpha, &sorted(order), page_size).await,
                expected,
                "{order:?}, {page_size} rows a page"
            );
        }
    }
    assert_eq!(
        listed(&fx, &beta, &sorted(OverviewOrder::Customer), 2).await,
        ["10"]
    );

    // Filters keep the order: a search, and the healths listed.
    let search = OverviewQuery {
        search: Some("MARKT".into()),
        ..sorted(OverviewOrder::Customer)
    };
    assert_eq!(listed(&fx, &alpha, &search, 1).await, ["03", "02"]);
    fx.heartbeat(&sites[9], "rs-1", 1).await.expect("heartbeat");
    fx.heartbeat(&sites[5], "rs-1", 1).await.expect("heartbeat");
    let needing_attention = OverviewQuery {
        include_healthy: false,
        ..sorted(OverviewOrder::Customer)
    };
    assert_eq!(
        listed(&fx, &alpha, &needing_attention, 2).await,
        ["03", "02", "04", "07", "01", "00", "06", "08"],
        "the Healthy (09, 05) left out, the rest in order"
    );
    let healthy = OverviewQuery {
        health: Some(Health::Healthy),
        ..sorted(OverviewOrder::Site)
    };
    assert_eq!(listed(&fx, &alpha, &healthy, 1).await, ["05", "09"]);

    // A cursor is a position, whether or not a row sits there.
    let from_b = OverviewQuery {
        after: Some(PageCursor::Label {
            order: LabelOrder::Customer,
            key: "0b".into(),
            slc: slc("AAAA"),
        }),
        ..sorted(OverviewOrder::Customer)
    };
    assert_eq!(
        listed(&fx, &alpha, &from_b, 3).await,
        ["04", "07", "09", "01", "05", "00", "06", "08"]
    );

    // A cursor of another order is refused, naming both.
    let crossed = OverviewQuery {
        after: Some(PageCursor::Health {
            health: Health::Pending,
            slc: slc("M01-C01-400-03"),
        }),
        ..sorted(OverviewOrder::Site)
    };
    let err = refused(
        fx.carewatch.overview(&alpha, &crossed).await,
        "a worst-first cursor for a sort by site",
    );
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                field: "page token",
                ..
            }
        ),
        "{err}"
    );

    // Renamed: it moves; cleared: it joins the unlabeled.
    fx.carewatch
        .set_labels(
            &admin,
            &sites[6].slc,
            &Labels::new("Aaron", "", "", &[]).expect("valid"),
        )
        .await
        .expect("renamed");
    fx.carewatch
        .set_labels(&admin, &sites[3].slc, &Labels::default())
        .await
        .expect("cleared");
    assert_eq!(
        listed(&fx, &alpha, &sorted(OverviewOrder::Customer), 4).await,
        ["06", "02", "04", "07", "09", "01", "05", "00", "03", "08"]
    );

    // Transferred: the labels stay behind, and so does its place.
    fx.carewatch
        .transfer_installation(&sites[1].slc, &beta, false)
        .await
        .expect("transferred");
    assert_eq!(
        listed(&fx, &beta, &sorted(OverviewOrder::Site), 1).await,
        ["10", "01"],
        "named first, the arrival unlabeled"
    );
    assert_eq!(
        listed(&fx, &alpha, &sorted(OverviewOrder::Site), 2).await,
        ["05", "09", "00", "02", "06", "04", "07", "03", "08"]
    );
}
