//! `carewatch health` (the container image's health check) against a real
//! `carewatch serve`: exit 0 and SERVING while it runs, a failure naming
//! the server once it stopped.

use std::process::Command;
use std::time::Duration;

use carewatch_tests::process::{ServeConfig, ServerProcess, binary};

fn health(program: &std::path::Path, server: &str, cert: &std::path::Path) -> std::process::Output {
    Command::new(program)
        .args(["health", "--server", server, "--ca-cert"])
        .arg(cert)
        .env_remove("CAREWATCH_SERVER")
        .env_remove("CAREWATCH_CA_CERT")
        .output()
        .expect("carewatch health runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_check_says_serving_then_fails_once_stopped() {
    let dir = tempfile::tempdir().expect("data dir");
    let program = binary(env!("CARGO_BIN_EXE_carewatch-under-test"));
    let mut server = ServerProcess::start(ServeConfig::new(&program, dir.path())).await;
    let cert = dir.path().join("cert.pem");
    let url = server.url();

    let up = tokio::task::spawn_blocking({
        let (program, url, cert) = (program.clone(), url.clone(), cert.clone());
        move || health(&program, &url, &cert)
    })
    .await
    .expect("joined");
    assert!(up.status.success(), "{up:?}");
    assert_eq!(String::from_utf8_lossy(&up.stdout).trim(), "SERVING");

    server.terminate(Duration::from_secs(30)).await;
    let down = tokio::task::spawn_blocking(move || health(&program, &url, &cert))
        .await
        .expect("joined");
    assert!(!down.status.success(), "{down:?}");
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(said.contains("error"), "{said}");
}
