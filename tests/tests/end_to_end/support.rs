//! Provisioning a reseller's site, issuing keys, sealing messages and reading details.

use carewatch_cli::simulate::Fleet;
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::seal::{self, Binding, InstallationKey, MessageKind};
use carewatch_grpc::proto;
use carewatch_tests::TestServer;

pub(crate) fn slc(s: &str) -> Slc {
    Slc::new(s).expect("valid SLC")
}

/// A reseller with one provisioned installation of `servers` servers.
pub(crate) async fn setup(
    server: &TestServer,
    reseller: &str,
    site: &str,
    servers: usize,
) -> (String, Fleet) {
    let mut admin = server.admin().await;
    let token = admin
        .create_reseller(proto::CreateResellerRequest {
            id: reseller.into(),
            name: reseller.into(),
        })
        .await
        .expect("reseller created")
        .into_inner()
        .token;
    let mut fleet = Fleet::default();
    let id = ResellerId::new(reseller).expect("id");
    fleet
        .provision(
            &mut admin,
            &id,
            &slc(site),
            ("XProtect Corporate", "2016"),
            servers,
        )
        .await
        .expect("provisioned");
    (token, fleet)
}

pub(crate) async fn issue_key(server: &TestServer, site: &str) -> InstallationKey {
    let key = server
        .admin()
        .await
        .issue_installation_key(proto::IssueInstallationKeyRequest { slc: site.into() })
        .await
        .expect("key issued")
        .into_inner();
    InstallationKey::from_text(&key.key).expect("key text")
}

pub(crate) fn sealed(
    key: &InstallationKey,
    site: &str,
    rs: &str,
    kind: MessageKind,
    sequence: u64,
    plain: &[u8],
) -> proto::SealedMessage {
    let (slc, server) = (slc(site), RecordingServerId::new(rs).expect("id"));
    let binding = Binding {
        slc: &slc,
        server: &server,
        kind,
        sequence,
    };
    proto::SealedMessage {
        slc: site.into(),
        recording_server_id: rs.into(),
        sequence,
        sealed: seal::seal(key, &binding, plain),
    }
}

pub(crate) async fn detail(
    dashboard: &mut carewatch_tests::Dashboard,
    site: &str,
) -> proto::InstallationDetail {
    dashboard
        .get_installation(proto::GetInstallationRequest { slc: site.into() })
        .await
        .expect("detail")
        .into_inner()
}
