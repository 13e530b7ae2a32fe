//! The Notifications service over a real loopback connection, on SQLite:
//! the reseller token manages channels and maintenance windows with no user
//! at all, the signing secret comes once, chat URLs never come back,
//! another reseller's things are NOT_FOUND, failed notifications are listed
//! with their error, read-only API tokens are refused.

mod common;

use std::time::Duration;

use carewatch_core::ids::ResellerId;
use carewatch_core::notification::DeliveryOutcome;
use carewatch_core::team::{Login, Role, User};
use carewatch_core::testing::Fixture;
use carewatch_grpc::client::Bearer;
use carewatch_grpc::proto::dashboard_client::DashboardClient;
use carewatch_grpc::proto::notifications_client::NotificationsClient;
use carewatch_grpc::proto::{self, create_channel_request::Destination};
use common::{SqliteFile, serve};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A Carewatch on SQLite serving every gRPC route on a loopback port.
struct Server {
    fixture: Fixture,
    url: String,
    _db: SqliteFile,
}

type Client = NotificationsClient<InterceptedService<Channel, Bearer>>;

impl Server {
    async fn start() -> Self {
        let db = SqliteFile::new();
        let fixture = Fixture::open(&db).await;
        let url = serve(&fixture).await;
        Self {
            fixture,
            url,
            _db: db,
        }
    }

    async fn channel(&self) -> Channel {
        carewatch_grpc::client::connect(&self.url, None)
            .await
            .expect("connects")
    }

    async fn client(&self, token: &str) -> Client {
        NotificationsClient::with_interceptor(
            self.channel().await,
            Bearer::new(token).expect("valid token"),
        )
    }

    /// A reseller and its token (the reseller has no user at all).
    async fn reseller(&self, id: &str) -> String {
        self.fixture.reseller(id).await;
        self.fixture
            .carewatch
            .rotate_reseller_token(&ResellerId::new(id).expect("valid"))
            .await
            .expect("rotates")
            .token
            .to_string()
    }
}

fn webhook(name: &str, url: &str) -> proto::CreateChannelRequest {
    proto::CreateChannelRequest {
        name: name.into(),
        destination: Some(Destination::Webhook(proto::WebhookDestination {
            url: url.into(),
        })),
        rules: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reseller_token_manages_channels_and_another_resellers_are_not_found() {
    let server = Server::start().await;
    let acme_token = server.reseller("acme").await;
    let rival_token = server.reseller("rival").await;
    let mut acme = server.client(&acme_token).await;
    let mut rival = server.client(&rival_token).await;

    let created = acme
        .create_channel(webhook(
            "Ops webhook",
            "https://hooks.example.net/carewatch/inbox",
        ))
        .await
        .expect("creates a webhook")
        .into_inner();
    assert!(
        created.signing_secret.starts_with("whsec"),
        "the signing secret comes once: {:?}",
        created.signing_secret
    );
    let channel = created.channel.expect("the channel");
    assert_eq!(channel.kind, "webhook");
    assert_eq!(channel.destination, "webhook to hooks.example.net");
    assert_eq!(channel.created_by, "api-token");
    let rules = channel.rules.expect("rules");
    assert!(rules.installations.is_empty(), "all installations");
    assert_eq!(rules.hold.expect("hold").seconds, 120, "the default hold");

    let slack_secret = "T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX";
    acme.create_channel(proto::CreateChannelRequest {
        name: "Slack".into(),
        destination: Some(Destination::Slack(proto::SlackDestination {
            url: format!("https://hooks.slack.com/services/{slack_secret}"),
        })),
        rules: Some(proto::ChannelRules {
            attention: true,
            installations: Vec::new(),
            hold: Some(prost_types::Duration {
                seconds: 300,
                nanos: 0,
            }),
            reminder: Some(prost_types::Duration {
                seconds: 3600,
                nanos: 0,
            }),
        }),
    })
    .await
    .expect("creates a Slack channel");

    let listed = acme
        .list_channels(proto::ListChannelsRequest {})
        .await
        .expect("lists")
        .into_inner()
        .channels;
    assert_eq!(listed.len(), 2);
    let text = format!("{listed:?}");
    assert!(!text.contains(slack_secret), "a chat URL never comes back");
    assert!(!text.contains("whsec"), "nor the signing secret");
    assert!(!text.contains("/carewatch/inbox"), "URLs are shown by host");
    let slack = listed.iter().find(|c| c.kind == "slack").expect("slack");
    let slack_rules = slack.rules.clone().expect("rules");
    assert!(slack_rules.attention);
    assert_eq!(slack_rules.reminder.expect("reminder").seconds, 3600);
    assert!(!slack.failing);

    // The rival sees nothing of ACME's and cannot touch it.
    assert!(
        rival
            .list_channels(proto::ListChannelsRequest {})
            .await
            .expect("lists")
            .into_inner()
            .channels
            .is_empty()
    );
    let id = channel.id.clone();
    let theirs = rival
        .delete_channel(proto::DeleteChannelRequest { id: id.clone() })
        .await
        .expect_err("not theirs");
    assert_eq!(theirs.code(), Code::NotFound, "{theirs:?}");
    let nobodys = rival
        .delete_channel(proto::DeleteChannelRequest {
            id: "0123456789abcdef".into(),
        })
        .await
        .expect_err("nobody's");
    assert_eq!(nobodys.code(), Code::NotFound);
    assert_eq!(
        theirs.message().replace(&id, "ID"),
        nobodys.message().replace("0123456789abcdef", "ID"),
        "another reseller's channel reads like a missing one"
    );
    let test = rival
        .test_channel(proto::TestChannelRequest { id: id.clone() })
        .await
        .expect_err("not theirs");
    assert_eq!(test.code(), Code::NotFound);
    let bad = acme
        .delete_channel(proto::DeleteChannelRequest { id: "nope".into() })
        .await
        .expect_err("not an id");
    assert_eq!(bad.code(), Code::InvalidArgument);

    acme.delete_channel(proto::DeleteChannelRequest { id })
        .await
        .expect("deletes its own");
    assert_eq!(
        acme.list_channels(proto::ListChannelsRequest {})
            .await
            .expect("lists")
            .into_inner()
            .channels
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_channels_are_invalid_arguments() {
    let server = Server::start().await;
    let mut acme = server.client(&server.reseller("acme").await).await;
    let cases = [
        webhook("No scheme", "hooks.example.net"),
        webhook("", "https://hooks.example.net"),
        proto::CreateChannelRequest {
            name: "Nowhere".into(),
            destination: None,
            rules: None,
        },
        proto::CreateChannelRequest {
            name: "Nobody".into(),
            destination: Some(Destination::Email(proto::EmailDestination {
                to: Vec::new(),
            })),
            rules: None,
        },
        proto::CreateChannelRequest {
            rules: Some(proto::ChannelRules {
                installations: vec!["not an slc".into()],
                ..proto::ChannelRules::default()
            }),
            ..webhook("Bad scope", "https://hooks.example.net")
        },
        proto::CreateChannelRequest {
            rules: Some(proto::ChannelRules {
                reminder: Some(prost_types::Duration {
                    seconds: 10,
                    nanos: 0,
                }),
                ..proto::ChannelRules::default()
            }),
            ..webhook("Nagging", "https://hooks.example.net")
        },
        // A negative hold was read as none (no damping), accepted.
        proto::CreateChannelRequest {
            rules: Some(proto::ChannelRules {
                hold: Some(prost_types::Duration {
                    seconds: -300,
                    nanos: 0,
                }),
                ..proto::ChannelRules::default()
            }),
            ..webhook("Undamped", "https://hooks.example.net")
        },
        proto::CreateChannelRequest {
            rules: Some(proto::ChannelRules {
                hold: Some(prost_types::Duration {
                    seconds: 60,
                    nanos: 2_000_000_000,
                }),
                ..proto::ChannelRules::default()
            }),
            ..webhook("Odd hold", "https://hooks.example.net")
        },
        // Shown as going to hooks.example.net, sent to evil.example.
        webhook("Hidden", "https://evil.example\\@hooks.example.net/x"),
        webhook("Bad port", "https://hooks.example.net:99999/x"),
        proto::CreateChannelRequest {
            name: "Typo".into(),
            destination: Some(Destination::Email(proto::EmailDestination {
                to: vec!["ops@@acme.example".into()],
            })),
            rules: None,
        },
    ];
    for case in cases {
        let refused = acme
            .create_channel(case.clone())
            .await
            .expect_err("refused");
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{case:?}: {refused:?}"
        );
    }
}

/// A channel that chooses installations: each must be the reseller's, as
/// for a maintenance window (another reseller's reads like a missing one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_chooses_only_its_resellers_installations() {
    let server = Server::start().await;
    let mut acme = server.client(&server.reseller("acme").await).await;
    server.reseller("rival").await;
    server.fixture.site("acme", "M01-C01-0001").await;
    server.fixture.site("rival", "M01-C01-0002").await;
    let choosing = |slcs: &[&str]| proto::CreateChannelRequest {
        rules: Some(proto::ChannelRules {
            installations: slcs.iter().map(|s| (*s).to_owned()).collect(),
            ..proto::ChannelRules::default()
        }),
        ..webhook("Some sites", "https://hooks.example.net")
    };
    let mut messages = Vec::new();
    for other in ["M01-C01-0002", "M01-C01-0003"] {
        let refused = acme
            .create_channel(choosing(&["M01-C01-0001", other]))
            .await
            .expect_err("not acme's");
        assert_eq!(refused.code(), Code::NotFound, "{other}: {refused:?}");
        messages.push(refused.message().replace(other, "SLC"));
    }
    assert_eq!(
        messages[0], messages[1],
        "another's reads like a missing one"
    );
    assert!(
        acme.list_channels(proto::ListChannelsRequest {})
            .await
            .expect("lists")
            .into_inner()
            .channels
            .is_empty(),
        "nothing made"
    );
    let made = acme
        .create_channel(choosing(&["M01-C01-0001", "M01-C01-0001"]))
        .await
        .expect("its own")
        .into_inner()
        .channel
        .expect("the channel");
    assert_eq!(
        made.rules.expect("rules").installations,
        ["M01-C01-0001"],
        "each once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_windows_of_one_reseller_are_not_found_for_another() {
    let server = Server::start().await;
    let acme_token = server.reseller("acme").await;
    let rival_token = server.reseller("rival").await;
    let site = server.fixture.site("acme", "M01-C01-0001").await;
    let mut acme = server.client(&acme_token).await;
    let mut rival = server.client(&rival_token).await;
    let now = server.fixture.carewatch.now();
    let request = |slc: &str| proto::CreateMaintenanceWindowRequest {
        slc: slc.into(),
        starts_at: Some(carewatch_grpc::convert::timestamp(now)),
        length: Some(prost_types::Duration {
            seconds: 7200,
            nanos: 0,
        }),
        every: Some(prost_types::Duration {
            seconds: 7 * 86_400,
            nanos: 0,
        }),
        reason: "firmware".into(),
    };
    let window = acme
        .create_maintenance_window(request(site.slc.as_str()))
        .await
        .expect("creates")
        .into_inner();
    assert_eq!(window.slc, site.slc.as_str());
    assert_eq!(window.created_by, "api-token");
    assert_eq!(
        window.in_force_until.expect("in force").seconds,
        now.as_millis() / 1000 + 7200
    );
    assert_eq!(
        window.next_starts_at.expect("weekly").seconds,
        now.as_millis() / 1000 + 7 * 86_400
    );
    // The Dashboard says the installation is in maintenance.
    let mut dashboard = DashboardClient::with_interceptor(
        server.channel().await,
        Bearer::new(&acme_token).expect("valid token"),
    );
    let rows = dashboard
        .list_installations(proto::ListInstallationsRequest {
            include_healthy: true,
            ..Default::default()
        })
        .await
        .expect("lists")
        .into_inner()
        .installations;
    assert_eq!(
        rows[0].maintenance_until.expect("in maintenance").seconds,
        now.as_millis() / 1000 + 7200
    );
    let detail = dashboard
        .get_installation(proto::GetInstallationRequest {
            slc: site.slc.to_string(),
        })
        .await
        .expect("reads")
        .into_inner();
    assert!(
        detail
            .installation
            .expect("row")
            .maintenance_until
            .is_some()
    );
    // Another reseller's installation is like a missing one.
    let theirs = rival
        .create_maintenance_window(request(site.slc.as_str()))
        .await
        .expect_err("not theirs");
    assert_eq!(theirs.code(), Code::NotFound);
    let all = rival
        .create_maintenance_window(request(""))
        .await
        .expect("every installation of the rival")
        .into_inner();
    assert_eq!(all.slc, "");
    let listed = acme
        .list_maintenance_windows(proto::ListMaintenanceWindowsRequest {})
        .await
        .expect("lists")
        .into_inner()
        .windows;
    assert_eq!(listed.len(), 1, "only its own: {listed:?}");
    let refused = rival
        .delete_maintenance_window(proto::DeleteMaintenanceWindowRequest {
            id: window.id.clone(),
        })
        .await
        .expect_err("not theirs");
    assert_eq!(refused.code(), Code::NotFound);
    let too_short = acme
        .create_maintenance_window(proto::CreateMaintenanceWindowRequest {
            length: Some(prost_types::Duration {
                seconds: 10,
                nanos: 0,
            }),
            ..request("")
        })
        .await
        .expect_err("too short");
    assert_eq!(too_short.code(), Code::InvalidArgument);
    let no_start = acme
        .create_maintenance_window(proto::CreateMaintenanceWindowRequest {
            starts_at: None,
            ..request("")
        })
        .await
        .expect_err("no start");
    assert_eq!(no_start.code(), Code::InvalidArgument);
    acme.delete_maintenance_window(proto::DeleteMaintenanceWindowRequest { id: window.id })
        .await
        .expect("deletes its own");
    let rows = dashboard
        .list_installations(proto::ListInstallationsRequest {
            include_healthy: true,
            ..Default::default()
        })
        .await
        .expect("lists")
        .into_inner()
        .installations;
    assert!(rows[0].maintenance_until.is_none(), "no longer");
    assert!(
        acme.list_maintenance_windows(proto::ListMaintenanceWindowsRequest {})
            .await
            .expect("lists")
            .into_inner()
            .windows
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_notification_is_pending_then_failed_with_its_error() {
    let server = Server::start().await;
    let mut acme = server.client(&server.reseller("acme").await).await;
    let mut rival = server.client(&server.reseller("rival").await).await;
    let channel = acme
        .create_channel(webhook("Ops", "https://hooks.example.net/in"))
        .await
        .expect("creates")
        .into_inner()
        .channel
        .expect("channel");
    acme.test_channel(proto::TestChannelRequest {
        id: channel.id.clone(),
    })
    .await
    .expect("queues a test");
    let list = |filter: proto::NotificationFilter| proto::ListNotificationsRequest {
        filter: filter.into(),
        limit: 0,
    };
    let pending = acme
        .list_notifications(list(proto::NotificationFilter::Pending))
        .await
        .expect("lists")
        .into_inner()
        .notifications;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].kind, "test");
    assert_eq!(pending[0].channel_id, channel.id);
    assert_eq!(pending[0].state(), proto::DeliveryState::Pending);
    assert!(pending[0].title.contains("Ops"), "{}", pending[0].title);
    assert!(
        rival
            .list_notifications(list(proto::NotificationFilter::All))
            .await
            .expect("lists")
            .into_inner()
            .notifications
            .is_empty(),
        "another reseller's notifications are not listed"
    );

    // Delivery gives up on it.
    let carewatch = &server.fixture.carewatch;
    let claimed = carewatch
        .claim_deliveries(Duration::from_secs(60), 10)
        .await
        .expect("claims");
    assert_eq!(claimed.len(), 1);
    carewatch
        .finish_delivery(
            claimed[0].id,
            &DeliveryOutcome::Failed {
                error: "hooks.example.net answered 410 Gone".into(),
            },
        )
        .await
        .expect("records the failure");
    let failed = acme
        .list_notifications(list(proto::NotificationFilter::Failed))
        .await
        .expect("lists")
        .into_inner()
        .notifications;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].state(), proto::DeliveryState::Failed);
    assert!(failed[0].last_error.contains("410 Gone"));
    assert!(failed[0].failed_at.is_some());
    let listed = acme
        .list_channels(proto::ListChannelsRequest {})
        .await
        .expect("lists")
        .into_inner()
        .channels;
    assert!(listed[0].last_error.contains("410 Gone"), "{listed:?}");
    assert!(listed[0].last_attempt_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_reseller_token_is_accepted() {
    let server = Server::start().await;
    server.reseller("acme").await;
    // A read-only API token of an admin of the same reseller.
    let admin = User {
        reseller: ResellerId::new("acme").expect("valid"),
        login: Login::new("admin@acme.example").expect("valid"),
        name: "Admin".into(),
        role: Role::Admin,
        created_at: server.fixture.carewatch.now(),
    };
    let api_token = server
        .fixture
        .carewatch
        .create_api_token(&admin, "PSA", None)
        .await
        .expect("creates an API token")
        .secret
        .token
        .to_string();
    for token in [api_token.as_str(), "cwr.nonsense"] {
        let mut client = server.client(token).await;
        let refused = client
            .list_channels(proto::ListChannelsRequest {})
            .await
            .expect_err("refused");
        assert_eq!(
            refused.code(),
            Code::Unauthenticated,
            "{token}: {refused:?}"
        );
    }
    let mut anonymous = NotificationsClient::new(server.channel().await);
    let refused = anonymous
        .create_channel(webhook("Ops", "https://hooks.example.net"))
        .await
        .expect_err("no token");
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_reports_its_health() {
    let server = Server::start().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "carewatch.v1.Notifications".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        status.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}
