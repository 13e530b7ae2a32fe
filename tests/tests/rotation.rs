//! Master-key rotation on a real `carewatch serve` (SQLite), as the README
//! tells an operator to do it: a new `master.key` with the old one given as
//! `--previous-master-key-file`, then `carewatch admin reseal-secrets`, then
//! a start with the new key alone. Recording servers keep their installation
//! keys and a channel its signing secret throughout; before the re-seal a
//! node given the new key alone refuses to start (what the re-seal is for).

use std::path::Path;
use std::process::Command;

use carewatch_cli::simulate::{Fleet, provision_site};
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::seal::MasterKey;
use carewatch_grpc::client::Bearer;
use carewatch_grpc::proto::admin_client::AdminClient;
use carewatch_grpc::proto::notifications_client::NotificationsClient;
use carewatch_grpc::proto::{self, create_channel_request::Destination};
use carewatch_tests::process::{ServeConfig, ServerProcess, binary};

fn program() -> std::path::PathBuf {
    binary(env!("CARGO_BIN_EXE_carewatch-under-test"))
}

/// The channels' destinations as the reseller sees them.
async fn destinations(server: &ServerProcess, token: &str) -> Vec<String> {
    NotificationsClient::with_interceptor(
        server.channel().await,
        Bearer::new(token).expect("token"),
    )
    .list_channels(proto::ListChannelsRequest {})
    .await
    .expect("channels listed")
    .into_inner()
    .channels
    .into_iter()
    .map(|c| c.destination)
    .collect()
}

/// `carewatch admin reseal-secrets` against `server`: its output and success.
fn reseal_secrets(server: &ServerProcess, expect: Option<&MasterKey>) -> (String, bool) {
    let expect = expect.map(|key| format!("--expect-master-key={}", key.fingerprint()));
    let mut args = vec!["reseal-secrets"];
    args.extend(expect.as_deref());
    let output = server.client("admin", &args, server.operator_token());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (text, output.status.success())
}

async fn restart_with(server: &mut ServerProcess, args: &[String]) {
    server.terminate(std::time::Duration::from_secs(10)).await;
    server.config_mut().args = args.to_vec();
    server.restart().await;
}

/// During a rotation the current key must already be in place: a new
/// random one made at start would receive every secret and be in no backup.
#[test]
fn a_missing_current_key_is_not_made_up_during_a_rotation() {
    let dir = tempfile::tempdir().expect("data dir");
    let earlier = dir.path().join("master.key.old");
    std::fs::write(&earlier, MasterKey::generate().to_hex().as_bytes()).expect("old key");
    let earlier = earlier.to_str().expect("a UTF-8 path");
    let said = serve_refuses(dir.path(), &["--previous-master-key-file", earlier]);
    assert!(said.contains("the current key must be in place"), "{said}");
    assert!(!dir.path().join("master.key").exists(), "no key made up");
}

/// `carewatch serve` on `dir` with `extra` arguments, which must refuse to
/// start: what it said.
fn serve_refuses(dir: &Path, extra: &[&str]) -> String {
    let mut child = Command::new(program())
        .args([
            "serve",
            "--insecure-plaintext",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .env_remove("CAREWATCH_DATABASE_URL")
        .env_remove("CAREWATCH_PREVIOUS_MASTER_KEY_FILES")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("carewatch serve runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("waits").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started with a master key that opens nothing");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A node whose master key opens none of the database's installation keys
/// (another deployment's key, or a new one made because the file was lost)
/// would refuse every recording server: it refuses to start instead, and a
/// key it made a moment ago is removed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_key_that_opens_nothing_stored_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("data dir");
    let mut server = ServerProcess::start(ServeConfig::new(program(), dir.path())).await;
    server.reseller_token("acme").await;
    provision_site(
        &mut server.admin().await,
        &ResellerId::new("acme").expect("id"),
        &Slc::new("M01-C01-0001").expect("slc"),
        ("XProtect Corporate", "2016"),
        1,
    )
    .await
    .expect("provisioned");
    server.terminate(std::time::Duration::from_secs(10)).await;
    let key_file = dir.path().join("master.key");
    let right = std::fs::read(&key_file).expect("the key");

    let other = MasterKey::generate();
    std::fs::write(&key_file, other.to_hex()).expect("another key");
    let said = serve_refuses(dir.path(), &[]);
    assert!(
        said.contains("opens none") && said.contains(&other.fingerprint()),
        "{said}"
    );

    std::fs::remove_file(&key_file).expect("lost");
    let said = serve_refuses(dir.path(), &[]);
    assert!(said.contains("opens none"), "{said}");
    assert!(
        !key_file.exists(),
        "the key made up a moment ago is removed"
    );

    std::fs::write(&key_file, right).expect("the right key back");
    server.restart().await;
    assert!(server.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_key_rotates_without_new_installation_keys_or_channels() {
    let dir = tempfile::tempdir().expect("data dir");
    let mut server = ServerProcess::start(ServeConfig::new(program(), dir.path())).await;
    let token = server.reseller_token("acme").await;
    let refused =
        AdminClient::with_interceptor(server.channel().await, Bearer::new(&token).expect("token"))
            .reseal_secrets(proto::ResealSecretsRequest::default())
            .await
            .expect_err("a reseller's token re-seals nothing");
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let slc = Slc::new("M01-C01-0001").expect("slc");
    let reseller = ResellerId::new("acme").expect("id");
    let mut fleet = Fleet {
        servers: provision_site(
            &mut server.admin().await,
            &reseller,
            &slc,
            ("XProtect", "2024 R1"),
            2,
        )
        .await
        .expect("provisioned"),
    };
    NotificationsClient::with_interceptor(
        server.channel().await,
        Bearer::new(&token).expect("token"),
    )
    .create_channel(proto::CreateChannelRequest {
        name: "ops".into(),
        destination: Some(Destination::Webhook(proto::WebhookDestination {
            url: "https://hooks.example.net/carewatch".into(),
        })),
        rules: None,
    })
    .await
    .expect("channel");
    assert_eq!(fleet.round(&server.ingest().await, 2).await.refused, 0);
    let before = destinations(&server, &token).await;
    assert!(before[0].contains("hooks.example.net"), "{before:?}");

    // A new key as the current one, the old one kept beside it.
    let (current, previous) = (
        dir.path().join("master.key"),
        dir.path().join("master.key.old"),
    );
    std::fs::rename(&current, &previous).expect("old key kept");
    let old_key = carewatch_core::seal::key_file::load(&previous).expect("old key");
    let new_key = MasterKey::generate();
    std::fs::write(&current, new_key.to_hex().as_bytes()).expect("new key");
    let with_previous = vec![
        "--previous-master-key-file".to_owned(),
        previous.display().to_string(),
    ];

    // Without the earlier key nothing sealed under it opens: a node given
    // the new key alone refuses to start (the re-seal below is what makes
    // the new key alone enough).
    server.terminate(std::time::Duration::from_secs(10)).await;
    let said = serve_refuses(dir.path(), &[]);
    assert!(
        said.contains("opens none") && said.contains(&new_key.fingerprint()),
        "{said}"
    );
    server.config_mut().args = with_previous.clone();
    server.restart().await;
    assert_eq!(
        fleet.round(&server.ingest().await, 2).await.refused,
        0,
        "the old key still opens"
    );
    assert_eq!(destinations(&server, &token).await, before);
    assert!(server.stderr_contains(&format!("master key {}", new_key.fingerprint())));
    let (said, ok) = reseal_secrets(&server, Some(&old_key));
    assert!(
        !ok && said.contains("not") && said.contains(&old_key.fingerprint()),
        "{said}"
    );
    let (said, ok) = reseal_secrets(&server, Some(&new_key));
    assert!(ok, "{said}");
    assert!(
        said.contains("installation keys: 1 re-sealed, 0 already"),
        "{said}"
    );
    assert!(said.contains("channels: 1 re-sealed, 0 already"), "{said}");
    let (again, ok) = reseal_secrets(&server, None);
    assert!(
        ok && again.contains("installation keys: 0 re-sealed, 1 already"),
        "{again}"
    );

    // The new key alone: the same installation key and channel work.
    restart_with(&mut server, &[]).await;
    assert_eq!(
        fleet.round(&server.ingest().await, 2).await.refused,
        0,
        "re-sealed under the new key"
    );
    assert_eq!(destinations(&server, &token).await, before);
    server.terminate(std::time::Duration::from_secs(10)).await;
}
