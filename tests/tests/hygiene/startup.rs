//! What `carewatch serve` checks before it says anything is ready.

use std::process::{Command, Stdio};

use carewatch_cli::tls::TlsIdentity;
use carewatch_tests::process::binary;

/// `carewatch serve` on `data` and a free port, with nothing in the
/// environment choosing its database or node id; more arguments follow.
fn serve_on(program: &std::path::Path, data: &std::path::Path) -> Command {
    let mut command = Command::new(program);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("CAREWATCH_DATABASE_URL")
        .env_remove("CAREWATCH_NODE_ID")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// How `child` exited, if it did within `limit`; else it is killed.
fn exit_within(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("status") {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A PostgreSQL URL nothing listens on.
const UNREACHABLE_DATABASE: &str = "postgres://carewatch@127.0.0.1:1/carewatch";

/// A key that is not the certificate's is refused before the operator
/// token is issued and "listening" is said: it failed only after both, so
/// a supervisor waiting for "listening" took a server that was about to
/// exit for a ready one.
#[test]
fn a_certificate_with_another_key_is_refused_before_anything_is_ready() {
    let (one, other) = (
        tempfile::tempdir().expect("directory"),
        tempfile::tempdir().expect("directory"),
    );
    TlsIdentity::self_signed_in(one.path(), &[]).expect("a pair");
    TlsIdentity::self_signed_in(other.path(), &[]).expect("another pair");
    let data = tempfile::tempdir().expect("data directory");
    let output = serve_on(
        &binary(env!("CARGO_BIN_EXE_carewatch-under-test")),
        data.path(),
    )
    .arg("--tls-cert")
    .arg(one.path().join("cert.pem"))
    .arg("--tls-key")
    .arg(other.path().join("key.pem"))
    .output()
    .expect("runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("certificate and key"), "says why: {stderr}");
    assert!(
        !stderr.contains("listening") && !stdout.contains("operator token"),
        "nothing said to be ready: {stdout}\n{stderr}"
    );
}

/// A second `serve` on a data directory another one uses is refused at
/// once, naming the directory. It ran beside the first on the same SQLite
/// database, master key and node id: each one's dispatcher released the
/// other's notification claims, so notifications went twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_a_data_directory_in_use_is_refused() {
    let data = tempfile::tempdir().expect("data directory");
    let program = binary(env!("CARGO_BIN_EXE_carewatch-under-test"));
    let mut first = carewatch_tests::process::ServerProcess::start(
        carewatch_tests::process::ServeConfig::new(&program, data.path()),
    )
    .await;
    let mut second = serve_on(&program, data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let status = exit_within(&mut second, std::time::Duration::from_secs(20));
    let mut stderr = String::new();
    if let Some(mut pipe) = second.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    first.terminate(std::time::Duration::from_secs(10)).await;
    let status = status.unwrap_or_else(|| panic!("the second serve kept running: {stderr}"));
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("another carewatch serve is using the data directory"),
        "{stderr}"
    );
}

/// A database that stays unreachable: `serve` tries for `--database-wait`,
/// then exits 75 (EX_TEMPFAIL: try again later), not 1 (it made one
/// attempt and exited 1).
#[test]
fn an_unreachable_database_is_tried_for_a_while_then_exits_try_again() {
    let data = tempfile::tempdir().expect("data directory");
    let begun = std::time::Instant::now();
    let output = serve_on(
        &binary(env!("CARGO_BIN_EXE_carewatch-under-test")),
        data.path(),
    )
    .args(["--database-url", UNREACHABLE_DATABASE])
    .args(["--database-wait", "2s"])
    .output()
    .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("trying again for up to 2 s"), "{stderr}");
    assert!(
        begun.elapsed() >= std::time::Duration::from_millis(1500),
        "it kept trying: {stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
    assert!(
        !data.path().join("master.key").exists(),
        "no key is made up for a database never reached"
    );
}

/// Found by review: the operator token is printed once, after it is stored;
/// a kill in between (or a container's logs gone) left a deployment no one
/// could administer. `carewatch operator-token` replaces it straight in
/// the database: the new token works, the old one no longer does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_operator_token_is_replaced_from_the_command_line() {
    use carewatch_grpc::client::Bearer;
    use carewatch_grpc::proto::{self, admin_client::AdminClient};
    let data = tempfile::tempdir().expect("data directory");
    let program = binary(env!("CARGO_BIN_EXE_carewatch-under-test"));
    let mut server = carewatch_tests::process::ServerProcess::start(
        carewatch_tests::process::ServeConfig::new(&program, data.path()),
    )
    .await;
    let lost = server.operator_token().to_owned();
    server.terminate(std::time::Duration::from_secs(10)).await;

    let replace = |dir: &std::path::Path| {
        Command::new(&program)
            .arg("operator-token")
            .arg("--data-dir")
            .arg(dir)
            .env_remove("CAREWATCH_DATABASE_URL")
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    };
    let elsewhere = tempfile::tempdir().expect("an empty directory");
    let refused = replace(elsewhere.path());
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("a Carewatch database at"),
        "{refused:?}"
    );
    assert!(
        !elsewhere.path().join("carewatch.db").exists(),
        "no empty database is made"
    );
    let replaced = replace(data.path());
    assert!(replaced.status.success(), "{replaced:?}");
    let token = String::from_utf8(replaced.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned();
    assert_ne!(token, lost);

    server.restart().await;
    let list = |token: &str| {
        let token = Bearer::new(token).expect("token");
        let server = &server;
        async move {
            AdminClient::with_interceptor(server.channel().await, token)
                .list_resellers(proto::ListResellersRequest::default())
                .await
        }
    };
    list(&token).await.expect("the new token works");
    let old = list(&lost).await.expect_err("the old token is refused");
    assert_eq!(old.code(), tonic::Code::Unauthenticated, "{old:?}");
    server.terminate(std::time::Duration::from_secs(10)).await;
}

/// `serve` on an unreachable database, waiting up to `wait` for it, once
/// it says it waits: the process, the rest of its stderr, what it said,
/// and its data directory (kept while it runs).
fn waiting_for_the_database(
    wait: &str,
) -> (
    std::process::Child,
    std::io::BufReader<std::process::ChildStderr>,
    String,
    tempfile::TempDir,
) {
    let data = tempfile::tempdir().expect("data directory");
    let mut child = serve_on(
        &binary(env!("CARGO_BIN_EXE_carewatch-under-test")),
        data.path(),
    )
    .args(["--database-url", UNREACHABLE_DATABASE])
    .args(["--database-wait", wait])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("runs");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut said = String::new();
    while !said.contains("trying again") {
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut stderr, &mut line).expect("reads");
        assert!(read > 0, "ended before waiting: {said}");
        said.push_str(&line);
    }
    (child, stderr, said, data)
}

fn send(signal: &str, child: &std::process::Child) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal}: {status}");
}

/// A SIGTERM while `serve` waits for its database ends the start at once
/// (its default action used to be the only handler before "listening"; in a
/// container, where `serve` is process 1, it was ignored).
#[test]
fn a_stop_while_waiting_for_the_database_ends_the_start() {
    let (mut child, mut stderr, said, _data) = waiting_for_the_database("120s");
    send("-TERM", &child);
    let status = exit_within(&mut child, std::time::Duration::from_secs(30))
        .expect("it stops within 30 s of SIGTERM, not waiting on for its database");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(status.success(), "{status}: {said}{rest}");
    assert!(rest.contains("stopped before it was ready"), "{rest}");
}

/// Found by review: the reload's SIGHUP handler was installed only once
/// the server ran, so a SIGHUP during start-up (a certbot deploy hook while
/// the database is waited for) ended the process. It is claimed at once:
/// the start goes on, to its end (here: the database never comes, 75).
#[test]
fn a_sighup_during_start_up_does_not_end_it() {
    let (mut child, mut stderr, said, _data) = waiting_for_the_database("4s");
    send("-HUP", &child);
    let status = exit_within(&mut child, std::time::Duration::from_secs(20))
        .unwrap_or_else(|| panic!("still running: {said}"));
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert_eq!(
        status.code(),
        Some(75),
        "not ended by the SIGHUP: {status:?}\n{said}{rest}"
    );
}
