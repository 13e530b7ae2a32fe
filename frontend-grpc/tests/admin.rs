//! Admin.TransferInstallation and Admin.ListAuditLog over a real loopback
//! connection, on SQLite: the operator moves an installation (the old
//! reseller then gets NOT_FOUND, the new one sees it), refusals have their
//! codes, and the audit log names the operator token's holder as the
//! actor; a reseller token opens neither.

mod common;

use carewatch_core::ids::ResellerId;
use carewatch_core::testing::Fixture;
use carewatch_grpc::client::Bearer;
use carewatch_grpc::proto::admin_client::AdminClient;
use carewatch_grpc::proto::dashboard_client::DashboardClient;
use carewatch_grpc::proto::{self};
use common::{SqliteFile, serve};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_transfers_and_reads_the_audit_log_a_reseller_cannot() {
    let db = SqliteFile::new();
    let fixture = Fixture::open(&db).await;
    let site = fixture.site("acme", "M01-C01-0001").await;
    fixture
        .heartbeat(&site, "rs-1", 1)
        .await
        .expect("first seen: a history event");
    fixture.reseller("beta").await;
    let url = serve(&fixture).await;
    let channel = carewatch_grpc::client::connect(&url, None)
        .await
        .expect("connects");
    let operator = fixture
        .carewatch
        .issue_operator_token(&ResellerId::new("ops-anna").expect("name"))
        .await
        .expect("operator token");
    let mut admin = AdminClient::with_interceptor(
        channel.clone(),
        Bearer::new(&operator.token).expect("token"),
    );
    let acme_token = fixture
        .carewatch
        .rotate_reseller_token(&site.reseller)
        .await
        .expect("token");
    let mut acme = DashboardClient::with_interceptor(
        channel.clone(),
        Bearer::new(&acme_token.token).expect("token"),
    );

    let transfer = |to: &str| proto::TransferInstallationRequest {
        slc: site.slc.to_string(),
        to_reseller_id: to.into(),
        share_history: false,
    };
    for (to, code) in [
        ("acme", Code::InvalidArgument),
        ("nobody", Code::NotFound),
        ("Not An Id", Code::InvalidArgument),
    ] {
        let refused = admin
            .transfer_installation(transfer(to))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), code, "to {to}: {refused:?}");
    }
    let moved = admin
        .transfer_installation(transfer("beta"))
        .await
        .expect("transferred")
        .into_inner();
    assert_eq!(moved.reseller_id, "beta");
    let history = admin
        .get_installation_history(proto::GetInstallationHistoryRequest {
            slc: site.slc.to_string(),
            limit: 0,
        })
        .await
        .expect("the operator's history")
        .into_inner();
    assert!(
        !history.events.is_empty(),
        "the past before the transfer is the operator's"
    );
    let missing = admin
        .get_installation_history(proto::GetInstallationHistoryRequest {
            slc: "M01-C01-0099".into(),
            limit: 0,
        })
        .await
        .expect_err("unknown");
    assert_eq!(missing.code(), Code::NotFound);
    let gone = acme
        .get_installation(proto::GetInstallationRequest {
            slc: site.slc.to_string(),
        })
        .await
        .expect_err("not acme's any more");
    assert_eq!(gone.code(), Code::NotFound);

    let log = admin
        .list_audit_log(proto::ListAuditLogRequest::default())
        .await
        .expect("audit log")
        .into_inner()
        .entries;
    let newest = &log[0];
    assert_eq!(
        (
            newest.action.as_str(),
            newest.actor_kind.as_str(),
            newest.actor_name.as_str(),
            newest.actor_reseller_id.as_str(),
            newest.target.as_str()
        ),
        (
            "installation.transferred",
            "operator",
            "ops-anna",
            "",
            site.slc.as_str()
        ),
        "{log:#?}"
    );
    assert!(log.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let page = admin
        .list_audit_log(proto::ListAuditLogRequest {
            before_id: newest.id,
            limit: 1,
            ..Default::default()
        })
        .await
        .expect("next page")
        .into_inner()
        .entries;
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, log[1].id);
    let team = admin
        .list_audit_log(proto::ListAuditLogRequest {
            team_reseller_id: "acme".into(),
            ..Default::default()
        })
        .await
        .expect("a team's")
        .into_inner()
        .entries;
    assert!(team.is_empty(), "only the operator acted: {team:#?}");

    // A reseller's token opens neither.
    let mut as_reseller =
        AdminClient::with_interceptor(channel, Bearer::new(&acme_token.token).expect("token"));
    let refused = as_reseller
        .list_audit_log(proto::ListAuditLogRequest::default())
        .await
        .expect_err("a reseller token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = as_reseller
        .transfer_installation(transfer("acme"))
        .await
        .expect_err("a reseller token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    let refused = as_reseller
        .get_installation_history(proto::GetInstallationHistoryRequest {
            slc: site.slc.to_string(),
            limit: 0,
        })
        .await
        .expect_err("a reseller token");
    assert_eq!(refused.code(), Code::Unauthenticated);
}
