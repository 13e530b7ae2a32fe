//! Webhooks (signed, through a proxy or not, over TLS only when trusted),
//! how answers are classified, Slack's and Teams' formats, and the Python
//! example verifying a real delivery.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use carewatch_core::notification::Destination;
use carewatch_core::notification::delivery::verify_signature;
use carewatch_core::notification::payload::SCHEMA;
use carewatch_notify::testing::http::{Receiver, Reply};
use carewatch_notify::{Attempt, Sender, SenderOptions, USER_AGENT};

use crate::fixtures::{SECRET, entry, opened, sender_trusting, unix_now};

#[tokio::test]
async fn a_webhook_gets_the_stored_body_signed_and_keyed() {
    let receiver = Receiver::start().await;
    let channel = opened(Destination::Webhook {
        url: receiver.url("/hooks/carewatch?tenant=acme"),
    });
    let entry = entry(&channel, "c1.M01-C01-123-45.problem.1.2");
    let attempt = sender_trusting(None).send(&channel, &entry).await;
    assert_eq!(attempt, Attempt::Delivered);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/carewatch?tenant=acme");
    assert_eq!(request.body, entry.body.as_bytes(), "the stored JSON as is");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some(entry.key.as_str()));
    assert_eq!(request.header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("carewatch/"));
    let signature = request.header("carewatch-signature").expect("signed");
    assert!(verify_signature(
        SECRET.as_bytes(),
        signature,
        &request.body,
        unix_now()
    ));
    assert!(!verify_signature(
        b"another secret",
        signature,
        &request.body,
        unix_now()
    ));
    assert_eq!(request.json()["schema"], SCHEMA);
}

/// A reseller's URL must not reach into the operator's network: by default
/// loopback, private and link-local addresses are refused, named or not,
/// and nothing is sent; the operator can allow them.
#[tokio::test]
async fn a_webhook_to_a_private_address_is_refused_unless_allowed() {
    let receiver = Receiver::start().await;
    let public_only = Sender::new(SenderOptions::default()).expect("sender");
    let by_ip = opened(Destination::Webhook {
        url: receiver.url("/hooks"),
    });
    let entry = entry(&by_ip, "c1.M01-C01-123-45.problem.1.2");
    let refused = public_only.send(&by_ip, &entry).await;
    let Attempt::Failed(error) = &refused else {
        panic!("an IP on loopback must be given up at once: {refused:?}");
    };
    assert!(
        error.contains("private") && error.contains("--allow-private-webhooks"),
        "{error}"
    );
    // The same receiver by a name that resolves to loopback.
    let by_name = opened(Destination::Webhook {
        url: receiver.url("/hooks").replace("127.0.0.1", "localhost"),
    });
    let refused = public_only.send(&by_name, &entry).await;
    assert!(
        matches!(&refused, Attempt::Unreachable(e) if e.contains("private")),
        "{refused:?}"
    );
    // A name that does not exist gets the same answer (which internal
    // names the server knows is not told), which says it may be unknown:
    // it read as if the name had a private address.
    let unknown = opened(Destination::Webhook {
        url: "http://nothing.invalid/hooks".into(),
    });
    let refused = public_only.send(&unknown, &entry).await;
    assert!(
        matches!(&refused, Attempt::Unreachable(e) if e.contains("the name is unknown")),
        "{refused:?}"
    );
    for url in [
        "http://10.0.0.1:9/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:9/hooks",
        "http://0x7f.1:9/hooks",
    ] {
        let channel = opened(Destination::Webhook { url: url.into() });
        let refused = public_only.send(&channel, &entry).await;
        assert!(
            matches!(&refused, Attempt::Failed(e) if e.contains("private")),
            "{url}: {refused:?}"
        );
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );

    let allowed = sender_trusting(None).send(&by_ip, &entry).await;
    assert_eq!(allowed, Attempt::Delivered, "allowed by the operator");
}

/// Through the proxy set (here a receiver answering as one): the whole
/// URL as the request target, the proxy's credentials as
/// `Proxy-Authorization`, and the body signed as ever. Without one, nothing
/// reaches it.
#[tokio::test]
async fn a_webhook_goes_through_the_proxy_set_and_only_then() {
    let proxy = Receiver::start().await;
    let proxy_url = proxy.url("").replace("http://", "http://ops:pr0xy-secret@");
    // Private addresses are not allowed, but the proxy (here on loopback)
    // is the operator's choice, and it resolves the receiver.
    let sender = Sender::new(SenderOptions {
        proxy: Some(carewatch_notify::ProxyUrl::parse(&proxy_url).expect("proxy URL")),
        ..SenderOptions::default()
    })
    .expect("sender");
    // Only the proxy knows the way: this name resolves nowhere.
    let channel = opened(Destination::Webhook {
        url: "http://hooks.example.invalid/carewatch?tenant=acme".into(),
    });
    let entry = entry(&channel, "c1.M01-C01-123-45.problem.1.2");
    assert_eq!(sender.send(&channel, &entry).await, Attempt::Delivered);
    let got = proxy.received();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert_eq!(
        request.target,
        "http://hooks.example.invalid/carewatch?tenant=acme"
    );
    assert_eq!(request.header("host"), Some("hooks.example.invalid"));
    // Basic base64("ops:pr0xy-secret").
    assert_eq!(
        request.header("proxy-authorization"),
        Some("Basic b3BzOnByMHh5LXNlY3JldA==")
    );
    let signature = request.header("carewatch-signature").expect("signed");
    assert!(verify_signature(
        SECRET.as_bytes(),
        signature,
        &request.body,
        unix_now()
    ));

    // Without a proxy the same channel is tried directly, and fails.
    let direct = sender_trusting(None).send(&channel, &entry).await;
    assert!(matches!(direct, Attempt::Unreachable(_)), "{direct:?}");
    assert_eq!(proxy.received().len(), 1);
}

/// A proxy that cannot be reached is a retry that names neither its
/// password nor the channel's path.
#[tokio::test]
async fn an_unreachable_proxy_is_retried_without_showing_its_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("address").port()
    };
    let sender = Sender::new(SenderOptions {
        allow_private_addresses: true, // the test's receiver is on loopback
        proxy: Some(
            carewatch_notify::ProxyUrl::parse(&format!("http://ops:pr0xy-secret@127.0.0.1:{port}"))
                .expect("proxy URL"),
        ),
        ..SenderOptions::default()
    })
    .expect("sender");
    let channel = opened(Destination::Webhook {
        url: "http://hooks.example.invalid/secret-path".into(),
    });
    let entry = entry(&channel, "c1.M01-C01-123-45.problem.1.2");
    match sender.send(&channel, &entry).await {
        Attempt::Unreachable(error) => {
            assert!(!error.contains("pr0xy-secret"), "{error}");
            assert!(!error.contains("secret-path"), "{error}");
        }
        other => panic!("not a retry: {other:?}"),
    }
}

#[tokio::test]
async fn a_webhook_over_tls_is_delivered_only_when_its_certificate_is_trusted() {
    let receiver = Receiver::start_tls().await;
    let url = receiver.url("/secret-path-abc/hook?token=secret-query");
    let channel = opened(Destination::Webhook { url });
    let entry = entry(&channel, "k-tls");

    let untrusting = sender_trusting(None).send(&channel, &entry).await;
    let Attempt::Unreachable(error) = untrusting else {
        panic!("an unknown certificate is retried (the receiver may fix it): {untrusting:?}");
    };
    eprintln!("untrusted certificate: {error}");
    assert!(error.contains("127.0.0.1"), "names the host: {error}");
    assert!(
        error.to_lowercase().contains("certificate"),
        "says why: {error}"
    );
    assert!(
        !error.contains("secret-path") && !error.contains("secret-query"),
        "no path or query in errors: {error}"
    );
    assert!(receiver.received().is_empty());

    let trusting = sender_trusting(receiver.cert_pem());
    assert_eq!(trusting.send(&channel, &entry).await, Attempt::Delivered);
    let got = receiver.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("idempotency-key"), Some("k-tls"));
    assert!(verify_signature(
        SECRET.as_bytes(),
        got[0].header("carewatch-signature").unwrap_or_default(),
        &got[0].body,
        unix_now()
    ));
}

#[tokio::test]
async fn answers_are_classified_retry_or_give_up_and_errors_show_no_path() {
    let receiver = Receiver::start().await;
    let url = receiver.url("/services/T000/B000/SECRETPATH?token=SECRETQUERY");
    let channel = opened(Destination::Webhook { url: url.clone() });
    let entry = entry(&channel, "k-codes");
    let sender = Sender::new(SenderOptions {
        allow_private_addresses: true, // the test's receiver is on loopback
        timeout: Duration::from_millis(700),
        ..SenderOptions::default()
    })
    .expect("sender");
    let cases: [(u16, bool); 9] = [
        (503, true),
        (500, true),
        (502, true),
        (429, true),
        (408, true),
        (400, false),
        (401, false),
        (410, false),
        (302, false),
    ];
    receiver.plan(cases.iter().map(|(status, _)| Reply::status(*status)));
    for (status, retried) in cases {
        let attempt = sender.send(&channel, &entry).await;
        let error = match (&attempt, retried) {
            (Attempt::Retry(e), true) | (Attempt::Failed(e), false) => e.clone(),
            _ => panic!("HTTP {status}: {attempt:?}"),
        };
        assert!(error.contains(&status.to_string()), "{error}");
        assert!(error.contains("127.0.0.1"), "{error}");
        assert!(
            !error.contains("SECRET") && !error.contains("T000"),
            "{error}"
        );
    }

    // No answer in time: retried, as unreachable (the dispatcher holds
    // back the channel's other entries of the batch).
    receiver.plan([Reply::status(200).after(Duration::from_secs(3))]);
    let slow = sender.send(&channel, &entry).await;
    let Attempt::Unreachable(error) = slow else {
        panic!("a receiver that does not answer is retried: {slow:?}");
    };
    eprintln!("slow: {error}");
    assert!(error.contains("no answer within"), "{error}");
    assert!(!error.contains("SECRET"), "{error}");

    // Nobody listening: retried.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        listener.local_addr().expect("addr").port()
    };
    let closed = opened(Destination::Slack {
        url: format!("http://127.0.0.1:{port}/services/T000/B000/SECRETPATH"),
    });
    let refused = sender.send(&closed, &entry).await;
    let Attempt::Unreachable(error) = refused else {
        panic!("a refused connection is retried: {refused:?}");
    };
    eprintln!("refused: {error}");
    assert!(error.contains("could not connect"), "{error}");
    assert!(!error.contains("SECRET"), "{error}");
}

#[tokio::test]
async fn slack_and_teams_get_their_own_formats_with_the_key() {
    let receiver = Receiver::start_tls().await;
    let sender = sender_trusting(receiver.cert_pem());
    let slack = opened(Destination::Slack {
        url: receiver.url("/services/T1/B1/xyz"),
    });
    let teams = opened(Destination::Teams {
        url: receiver.url("/webhookb2/abc/IncomingWebhook/def"),
    });
    assert_eq!(
        sender.send(&slack, &entry(&slack, "k-slack")).await,
        Attempt::Delivered
    );
    assert_eq!(
        sender.send(&teams, &entry(&teams, "k-teams")).await,
        Attempt::Delivered
    );
    let got = receiver.received();
    assert_eq!(got.len(), 2);

    let s = &got[0];
    assert_eq!(s.path, "/services/T1/B1/xyz");
    assert_eq!(s.header("idempotency-key"), Some("k-slack"));
    assert_eq!(s.header("content-type"), Some("application/json"));
    assert!(
        s.header("carewatch-signature").is_none(),
        "chat is not signed"
    );
    let text = s.json()["text"].as_str().unwrap_or_default().to_owned();
    assert!(text.starts_with("*M01-C01-123-45 is Offline"), "{text}");
    assert!(text.contains("Unavailable: rs-1, rs-2."), "{text}");
    assert!(
        text.contains("XProtect &lt;Corporate&gt;"),
        "escaped: {text}"
    );

    let t = &got[1];
    assert_eq!(t.header("idempotency-key"), Some("k-teams"));
    let card = t.json();
    assert_eq!(card["@type"], "MessageCard");
    assert_eq!(card["@context"], "https://schema.org/extensions");
    assert_eq!(
        card["summary"],
        "M01-C01-123-45 is Offline (site unreachable, possibly its network)"
    );
    assert!(
        card["title"]
            .as_str()
            .is_some_and(|t| t.contains("Offline"))
    );
    assert!(
        card["text"]
            .as_str()
            .is_some_and(|t| t.contains("rs-1, rs-2") && !t.contains("<Corporate>"))
    );
}

/// The Python example in the docs verifies a real signed delivery and
/// refuses a tampered body, another secret and an old timestamp.
#[tokio::test]
async fn the_python_example_and_the_documented_snippet_verify_a_real_delivery() {
    let receiver = Receiver::start().await;
    let channel = opened(Destination::Webhook {
        url: receiver.url("/hook"),
    });
    let sent = entry(&channel, "k-python");
    assert_eq!(
        sender_trusting(None).send(&channel, &sent).await,
        Attempt::Delivered
    );
    let got = receiver.received();
    let header = got[0]
        .header("carewatch-signature")
        .expect("signed")
        .to_owned();
    let body = got[0].body.clone();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/verify_signature.py");
    // NOTIFICATIONS.md's snippet, which a receiver's author copies, run the
    // same way as the example file.
    let documented = documented_python_snippet()
        + "\nimport os, sys\n\
           ok = verify(os.environ['CAREWATCH_WEBHOOK_SECRET'], sys.argv[1], sys.stdin.buffer.read())\n\
           print('valid' if ok else 'invalid')\nsys.exit(0 if ok else 1)\n";
    for program in [vec![script.to_owned()], vec!["-c".to_owned(), documented]] {
        check_python_verifier(&program, &header, &body);
    }
}

fn documented_python_snippet() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../NOTIFICATIONS.md"))
        .expect("NOTIFICATIONS.md");
    let section = doc
        .split_once("### Verifying the signature")
        .expect("the section")
        .1;
    section
        .split_once("```python\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a python block")
        .0
        .to_owned()
}

/// Runs the Python verifier `program` (a script, or `-c` and code) on a
/// real delivery's `header` and `body`, and on altered ones.
fn check_python_verifier(program: &[String], header: &str, body: &[u8]) {
    let run = |secret: &str, header: &str, body: &[u8]| -> bool {
        let mut child = Command::new("python3")
            .args(program)
            .arg(header)
            .env("CAREWATCH_WEBHOOK_SECRET", secret)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body)
            .expect("body written");
        let output = child.wait_with_output().expect("python3 ends");
        let said = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(said == "valid" || said == "invalid", "{said}");
        output.status.success()
    };
    assert!(run(SECRET, header, body), "the real delivery verifies");
    let mut tampered = body.to_vec();
    tampered.extend_from_slice(b" ");
    assert!(!run(SECRET, header, &tampered), "a changed body");
    assert!(!run("whsec_other", header, body), "another secret");
    let old = unix_now() - 301;
    let replayed =
        carewatch_core::notification::delivery::signature_header(SECRET.as_bytes(), old, body);
    assert!(!run(SECRET, &replayed, body), "older than 5 minutes");
    assert!(!run(SECRET, "garbage", body), "no signature");
}
