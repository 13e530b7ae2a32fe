//! Dashboard.ListInstallations sorted and filtered over a real loopback
//! connection: by customer and by site (names set with SetLabels), a health
//! filter, tokens that continue only their own order, and unknown enum
//! values refused.

mod common;

use carewatch_core::testing::Fixture;
use carewatch_grpc::proto::{self};
use common::{Dashboard, SqliteFile, dashboard, serve};
use tonic::Code;

/// Every page of `request`, one row at a time: the SLCs in order.
async fn listed(client: &mut Dashboard, request: proto::ListInstallationsRequest) -> Vec<String> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_installations(proto::ListInstallationsRequest {
                page_size: 1,
                page_token,
                ..request.clone()
            })
            .await
            .expect("lists")
            .into_inner();
        out.extend(page.installations.into_iter().map(|r| r.slc));
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installations_are_listed_by_customer_by_site_and_by_health() {
    let db = SqliteFile::new();
    let fixture = Fixture::open(&db).await;
    // (SLC, customer, site): SLC order unlike either name order.
    let named = [
        ("M01-C01-0001", "Zoo Berlin", "Alpha"),
        ("M01-C01-0002", "Ärzte am Markt", "Zentrale"),
        ("M01-C01-0003", "", ""),
        ("M01-C01-0004", "bäcker", "Mitte"),
    ];
    let mut sites = Vec::new();
    for (slc, _, _) in named {
        sites.push(fixture.site("acme", slc).await);
    }
    fixture.site("rival", "M01-C01-0005").await;
    fixture.heartbeat(&sites[0], "rs-1", 1).await.expect("beat");
    let url = serve(&fixture).await;
    let mut acme = dashboard(&fixture, &url, "acme").await;
    for (slc, customer, site) in named {
        acme.set_labels(proto::SetLabelsRequest {
            slc: slc.into(),
            labels: Some(proto::Labels {
                customer: customer.into(),
                site: site.into(),
                ..proto::Labels::default()
            }),
        })
        .await
        .expect("labels set");
    }

    let all = |order: proto::InstallationOrder| proto::ListInstallationsRequest {
        include_healthy: true,
        order: order as i32,
        ..proto::ListInstallationsRequest::default()
    };
    assert_eq!(
        listed(&mut acme, all(proto::InstallationOrder::Customer)).await,
        [
            "M01-C01-0002",
            "M01-C01-0004",
            "M01-C01-0001",
            "M01-C01-0003"
        ],
        "accents and case ignored, the unlabeled last, rival's never"
    );
    assert_eq!(
        listed(&mut acme, all(proto::InstallationOrder::Site)).await,
        [
            "M01-C01-0001",
            "M01-C01-0004",
            "M01-C01-0002",
            "M01-C01-0003"
        ]
    );
    let healthy = proto::ListInstallationsRequest {
        health: proto::Health::Healthy as i32,
        ..all(proto::InstallationOrder::Customer)
    };
    assert_eq!(listed(&mut acme, healthy).await, ["M01-C01-0001"]);
    let pending = proto::ListInstallationsRequest {
        health: proto::Health::Pending as i32,
        ..all(proto::InstallationOrder::Site)
    };
    assert_eq!(
        listed(&mut acme, pending).await,
        ["M01-C01-0004", "M01-C01-0002", "M01-C01-0003"]
    );

    // A worst-first token does not continue a sort by site.
    let first = acme
        .list_installations(proto::ListInstallationsRequest {
            page_size: 1,
            ..all(proto::InstallationOrder::WorstFirst)
        })
        .await
        .expect("lists")
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    for bad in [
        proto::ListInstallationsRequest {
            page_token: first.next_page_token,
            ..all(proto::InstallationOrder::Site)
        },
        proto::ListInstallationsRequest {
            order: 7,
            ..all(proto::InstallationOrder::Site)
        },
        proto::ListInstallationsRequest {
            health: 9,
            ..all(proto::InstallationOrder::Site)
        },
    ] {
        let status = acme.list_installations(bad).await.expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
}
