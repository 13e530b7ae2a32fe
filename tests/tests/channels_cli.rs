//! `carewatch channels` against a real `carewatch serve`, as a script uses
//! it: standard output holds the new channel's id, then (a webhook) its
//! signing secret, each on a line of its own; the id works with the other
//! commands.

use std::process::Output;

use carewatch_tests::process::{ServeConfig, ServerProcess, binary};

fn channels(server: &ServerProcess, token: &str, args: &[&str]) -> Output {
    let output = server.client("channels", args, token);
    assert!(output.status.success(), "{args:?}: {output:?}");
    output
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_add_prints_the_id_then_the_secret_for_scripts() {
    let dir = tempfile::tempdir().expect("data dir");
    let server = ServerProcess::start(ServeConfig::new(
        binary(env!("CARGO_BIN_EXE_carewatch-under-test")),
        dir.path(),
    ))
    .await;
    let token = server.reseller_token("acme").await;
    let is_id = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());

    let webhook = channels(
        &server,
        &token,
        &[
            "add",
            "--webhook",
            "https://hooks.example.net/cw",
            "ops hook",
        ],
    );
    let lines = stdout_lines(&webhook);
    assert_eq!(lines.len(), 2, "the id, then the secret: {lines:?}");
    let (webhook_id, secret) = (&lines[0], &lines[1]);
    assert!(is_id(webhook_id), "{lines:?}");
    assert!(secret.len() >= 32 && secret != webhook_id, "{lines:?}");
    let listed = stdout_lines(&channels(&server, &token, &["list"])).join("\n");
    assert!(listed.contains(webhook_id.as_str()), "{listed}");
    assert!(
        !listed.contains(secret.as_str()),
        "the secret is shown once: {listed}"
    );

    let email = channels(
        &server,
        &token,
        &["add", "--email", "ops@acme.example", "ops mail"],
    );
    let lines = stdout_lines(&email);
    assert!(
        lines.len() == 1 && is_id(&lines[0]),
        "the id alone: {lines:?}"
    );

    channels(&server, &token, &["delete", webhook_id]);
    let listed = stdout_lines(&channels(&server, &token, &["list"])).join("\n");
    assert!(
        !listed.contains(webhook_id.as_str()) && listed.contains(&lines[0]),
        "{listed}"
    );
}
