//! `carewatch dashboard` against a real `carewatch serve`: the reseller's
//! installations sorted by customer or by site and filtered by health, as
//! JSON lines, paged through the server one token at a time.

use carewatch_cli::simulate::provision_site;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_grpc::proto;
use carewatch_tests::process::{ServeConfig, ServerProcess, binary};

/// The SLCs `carewatch dashboard --json` prints with `flags`, in order.
fn dashboard(server: &ServerProcess, token: &str, flags: &[&str]) -> Vec<String> {
    let args: Vec<&str> = ["--json"]
        .into_iter()
        .chain(flags.iter().copied())
        .collect();
    let output = server.client("dashboard", &args, token);
    assert!(output.status.success(), "{flags:?}: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            row["slc"].as_str().expect("slc").to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_command_sorts_by_customer_and_site_and_filters_by_health() {
    let dir = tempfile::tempdir().expect("data dir");
    let server = ServerProcess::start(ServeConfig::new(
        binary(env!("CARGO_BIN_EXE_carewatch-under-test")),
        dir.path(),
    ))
    .await;
    let token = server.reseller_token("acme").await;
    let mut dashboard_client = server.dashboard(&token).await;
    // (SLC, customer, site): SLC order unlike either name order.
    let named = [
        ("M01-C01-0001", "Zoo Berlin", "Alpha"),
        ("M01-C01-0002", "Ärzte am Markt", "Zentrale"),
        ("M01-C01-0003", "", ""),
        ("M01-C01-0004", "bäcker", "Mitte"),
    ];
    for (slc, customer, site) in named {
        provision_site(
            &mut server.admin().await,
            &ResellerId::new("acme").expect("id"),
            &Slc::new(slc).expect("slc"),
            ("XProtect Corporate", "2016"),
            0,
        )
        .await
        .expect("provisioned");
        dashboard_client
            .set_labels(proto::SetLabelsRequest {
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

    assert_eq!(
        dashboard(&server, &token, &["--all", "--sort", "customer"]),
        [
            "M01-C01-0002",
            "M01-C01-0004",
            "M01-C01-0001",
            "M01-C01-0003"
        ]
    );
    assert_eq!(
        dashboard(&server, &token, &["--sort", "site"]),
        [
            "M01-C01-0001",
            "M01-C01-0004",
            "M01-C01-0002",
            "M01-C01-0003"
        ],
        "all Pending: listed without --all"
    );
    assert_eq!(
        dashboard(&server, &token, &["--health", "pending", "--search", "ä"]),
        ["M01-C01-0002", "M01-C01-0004"],
        "worst first (all Pending: by SLC)"
    );
    assert!(dashboard(&server, &token, &["--health", "offline"]).is_empty());
}
