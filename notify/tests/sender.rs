//! The sender against real receivers: an HTTP server over plain TCP and
//! over TLS (a self-signed certificate the sender is told to trust), and an
//! SMTP server with STARTTLS, implicit TLS, AUTH and refusals. No mock
//! transport anywhere.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carewatch_core::OpenedChannel;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::notification::delivery::verify_signature;
use carewatch_core::notification::payload::{
    ConditionPart, InstallationPart, Notification, SCHEMA, ServerPart,
};
use carewatch_core::notification::{
    ChannelId, ChannelRecord, ChannelRules, DeliveryStatus, Destination, OutboxEntry,
};
use carewatch_core::team::Login;
use carewatch_core::time::Timestamp;
use carewatch_notify::testing::http::{Receiver, Reply};
use carewatch_notify::testing::smtp::{Security, SmtpServer};
use carewatch_notify::{Attempt, Sender, SenderOptions, SmtpSettings, USER_AGENT, parse_mailbox};
use zeroize::Zeroizing;

const SECRET: &str = "whsec_test_0123456789abcdef";
const WAIT: Duration = Duration::from_secs(5);

fn opened(destination: Destination) -> OpenedChannel {
    let webhook = matches!(destination, Destination::Webhook { .. });
    OpenedChannel {
        record: ChannelRecord {
            id: ChannelId::generate(),
            reseller: ResellerId::new("acme").expect("id"),
            name: "ops".into(),
            kind: destination.kind().into(),
            sealed: Vec::new(),
            rules: ChannelRules::default(),
            created_at: Timestamp::from_millis(0),
            created_by: Login::new("admin@acme.example").expect("login"),
            status: DeliveryStatus::default(),
        },
        destination,
        signing_secret: webhook.then(|| Zeroizing::new(SECRET.as_bytes().to_vec())),
    }
}

/// A site-offline notification with hostile text in it.
fn notification(key: &str) -> Notification {
    Notification {
        schema: SCHEMA.into(),
        id: key.into(),
        kind: "problem".into(),
        at: "2030-01-02T03:04:05.000Z".into(),
        reseller: "acme".into(),
        title: "M01-C01-123-45 is Offline (site unreachable, possibly its network)".into(),
        text: "M01-C01-123-45 (XProtect <Corporate> 2016): 2 of 2 recording servers unavailable, \
               0 late, 1 active conditions.\nUnavailable: rs-1, rs-2."
            .into(),
        installation: Some(InstallationPart {
            slc: "M01-C01-123-45".into(),
            product: "XProtect <Corporate> 2016".into(),
            health: "offline".into(),
            since: Some("2030-01-02T03:00:00.000Z".into()),
            worst_condition: Some("STORAGE_FULL".into()),
            servers: 2,
            unavailable: 2,
            late: 0,
            offline: true,
        }),
        servers_down: vec![
            ServerPart {
                id: "rs-1".into(),
                since: "2030-01-02T03:00:00.000Z".into(),
                missed: 3,
            },
            ServerPart {
                id: "rs-2".into(),
                since: "2030-01-02T03:00:00.500Z".into(),
                missed: 3,
            },
        ],
        conditions: vec![ConditionPart {
            server: "rs-1".into(),
            code: "STORAGE_FULL".into(),
            subject: "D:\\ <script>alert(1)</script>".into(),
            since: "2030-01-02T02:00:00.000Z".into(),
        }],
        resolved: None,
    }
}

fn entry(channel: &OpenedChannel, key: &str) -> OutboxEntry {
    OutboxEntry {
        id: 1,
        channel: channel.record.id.clone(),
        reseller: channel.record.reseller.clone(),
        slc: Some(Slc::new("M01-C01-123-45").expect("slc")),
        key: key.into(),
        body: notification(key).to_json(),
        created_at: Timestamp::from_millis(1_893_553_445_000),
        attempts: 0,
        next_attempt_at: Timestamp::from_millis(0),
        last_error: None,
        delivered_at: None,
        failed_at: None,
    }
}

fn sender_trusting(pem: Option<&str>) -> Sender {
    Sender::new(SenderOptions {
        extra_roots_pem: pem.map(|p| p.as_bytes().to_vec()),
        ..SenderOptions::default()
    })
    .expect("sender")
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

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

/// Through the proxy set (here a receiver answering as one): the whole
/// URL as the request target, the proxy's credentials as
/// `Proxy-Authorization`, and the body signed as ever. Without one, nothing
/// reaches it.
#[tokio::test]
async fn a_webhook_goes_through_the_proxy_set_and_only_then() {
    let proxy = Receiver::start().await;
    let proxy_url = proxy.url("").replace("http://", "http://ops:pr0xy-secret@");
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
    assert!(matches!(direct, Attempt::Retry(_)), "{direct:?}");
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
        Attempt::Retry(error) => {
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
    let Attempt::Retry(error) = untrusting else {
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

    // No answer in time: retried.
    receiver.plan([Reply::status(200).after(Duration::from_secs(3))]);
    let slow = sender.send(&channel, &entry).await;
    let Attempt::Retry(error) = slow else {
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
    let Attempt::Retry(error) = refused else {
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

fn smtp_sender(server: &SmtpServer) -> Sender {
    Sender::new(SenderOptions {
        smtp: Some(SmtpSettings {
            url: server.url().parse().expect("SMTP URL"),
            from: parse_mailbox("Carewatch <carewatch@alerts.example.net>").expect("from"),
        }),
        extra_roots_pem: server.cert_pem().map(|p| p.as_bytes().to_vec()),
        timeout: Duration::from_secs(5),
        proxy: None,
    })
    .expect("sender")
}

fn email_channel() -> OpenedChannel {
    opened(Destination::Email {
        to: vec!["ops@acme.example".into(), "oncall@acme.example".into()],
    })
}

fn header<'a>(mail: &'a mailparse::ParsedMail<'a>, name: &str) -> String {
    use mailparse::MailHeaderMap;
    mail.headers.get_first_value(name).unwrap_or_default()
}

#[tokio::test]
async fn an_email_has_text_and_html_parts_and_the_same_message_id_on_every_attempt() {
    let server = SmtpServer::start(Security::Plaintext, None).await;
    let sender = smtp_sender(&server);
    let channel = email_channel();
    let entry = entry(&channel, "c1.M01-C01-123-45.problem.1.2");
    assert_eq!(sender.send(&channel, &entry).await, Attempt::Delivered);
    assert_eq!(sender.send(&channel, &entry).await, Attempt::Delivered);
    let mail = server.wait_for(2, WAIT).await;
    assert_eq!(mail.len(), 2);
    assert_eq!(mail[0].from, "carewatch@alerts.example.net");
    assert_eq!(mail[0].to, ["ops@acme.example", "oncall@acme.example"]);
    assert!(!mail[0].tls);

    let parsed: Vec<_> = mail
        .iter()
        .map(|m| mailparse::parse_mail(&m.data).expect("a MIME message"))
        .collect();
    let first = &parsed[0];
    assert_eq!(
        header(first, "Subject"),
        "M01-C01-123-45 is Offline (site unreachable, possibly its network)"
    );
    assert_eq!(
        header(first, "Message-ID"),
        "<c1.M01-C01-123-45.problem.1.2@alerts.example.net>"
    );
    assert_eq!(
        header(first, "Message-ID"),
        header(&parsed[1], "Message-ID"),
        "a retry is the same message"
    );
    assert_eq!(
        header(first, "X-Carewatch-Idempotency-Key"),
        "c1.M01-C01-123-45.problem.1.2"
    );
    assert_eq!(header(first, "Auto-Submitted"), "auto-generated");
    assert!(header(first, "From").contains("carewatch@alerts.example.net"));
    assert!(header(first, "To").contains("oncall@acme.example"));
    assert_eq!(first.ctype.mimetype, "multipart/alternative");
    let text = first
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/plain")
        .expect("a text part")
        .get_body()
        .expect("text");
    let html = first
        .subparts
        .iter()
        .find(|p| p.ctype.mimetype == "text/html")
        .expect("an HTML part")
        .get_body()
        .expect("html");
    assert!(text.contains("rs-1: unavailable since"), "{text}");
    assert!(text.contains("rs-2"), "{text}");
    assert!(
        text.contains("STORAGE_FULL on D:\\ <script>"),
        "text as is: {text}"
    );
    assert!(html.contains("<td>rs-2</td>"), "{html}");
    assert!(!html.contains("<script>"), "escaped: {html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    assert!(html.contains("XProtect &lt;Corporate&gt;"), "{html}");
}

#[tokio::test]
async fn email_goes_over_starttls_or_tls_with_a_password() {
    for security in [Security::StartTls, Security::Tls] {
        let server = SmtpServer::start(security, Some(("alerts@acme", "p@ss:w0rd/%"))).await;
        let sender = smtp_sender(&server);
        let channel = email_channel();
        let attempt = sender.send(&channel, &entry(&channel, "k-tls-mail")).await;
        assert_eq!(attempt, Attempt::Delivered, "{security:?}");
        let mail = server.mail();
        assert_eq!(mail.len(), 1, "{security:?}");
        assert!(mail[0].tls, "{security:?}");
        assert_eq!(mail[0].user.as_deref(), Some("alerts@acme"));
    }
}

#[tokio::test]
async fn an_smtp_server_without_starttls_or_with_an_untrusted_certificate_gets_nothing() {
    // smtp:// requires STARTTLS: a plaintext-only server is not used.
    let plain = SmtpServer::start(Security::Plaintext, None).await;
    let url = plain.url().replace("smtp+insecure://", "smtp://");
    let sender = Sender::new(SenderOptions {
        smtp: Some(SmtpSettings {
            url: url.parse().expect("URL"),
            from: parse_mailbox("cw@alerts.example.net").expect("from"),
        }),
        ..SenderOptions::default()
    })
    .expect("sender");
    let channel = email_channel();
    let attempt = sender.send(&channel, &entry(&channel, "k")).await;
    assert!(matches!(attempt, Attempt::Retry(_)), "{attempt:?}");
    assert!(plain.mail().is_empty());

    // A TLS server whose certificate nobody said to trust.
    let tls = SmtpServer::start(Security::Tls, None).await;
    let sender = Sender::new(SenderOptions {
        smtp: Some(SmtpSettings {
            url: tls.url().parse().expect("URL"),
            from: parse_mailbox("cw@alerts.example.net").expect("from"),
        }),
        ..SenderOptions::default()
    })
    .expect("sender");
    let attempt = sender.send(&channel, &entry(&channel, "k")).await;
    assert!(matches!(attempt, Attempt::Retry(_)), "{attempt:?}");
    assert!(tls.mail().is_empty());
}

#[tokio::test]
async fn smtp_refusals_are_retried_or_given_up_and_never_show_the_password() {
    let server = SmtpServer::start(Security::StartTls, Some(("alerts", "hunter2-secret"))).await;
    let sender = smtp_sender(&server);
    let channel = email_channel();
    let entry = entry(&channel, "k-refusals");
    server.refuse_next(["451 4.3.0 try again later", "550 5.1.1 mailbox unavailable"]);
    let transient = sender.send(&channel, &entry).await;
    assert!(
        matches!(&transient, Attempt::Retry(e) if e.contains("try again later")),
        "{transient:?}"
    );
    let permanent = sender.send(&channel, &entry).await;
    assert!(
        matches!(&permanent, Attempt::Failed(e) if e.contains("mailbox unavailable")),
        "{permanent:?}"
    );
    assert_eq!(sender.send(&channel, &entry).await, Attempt::Delivered);

    let wrong = SmtpSettings {
        url: server
            .url()
            .replace("hunter2-secret", "wrong-secret")
            .parse()
            .expect("URL"),
        from: parse_mailbox("cw@alerts.example.net").expect("from"),
    };
    assert!(!format!("{wrong:?}").contains("wrong-secret"));
    let sender = Sender::new(SenderOptions {
        smtp: Some(wrong),
        extra_roots_pem: server.cert_pem().map(|p| p.as_bytes().to_vec()),
        ..SenderOptions::default()
    })
    .expect("sender");
    let refused = sender.send(&channel, &entry).await;
    let (Attempt::Failed(error) | Attempt::Retry(error)) = &refused else {
        panic!("a wrong password does not deliver: {refused:?}");
    };
    assert!(!error.contains("secret"), "{error}");
    assert_eq!(server.auth_failures(), 1);
    assert_eq!(server.mail().len(), 1);
}

#[tokio::test]
async fn email_without_an_smtp_server_waits_for_one() {
    let channel = email_channel();
    let attempt = sender_trusting(None)
        .send(&channel, &entry(&channel, "k"))
        .await;
    assert!(
        matches!(&attempt, Attempt::Retry(e) if e.contains("--smtp-url")),
        "{attempt:?}"
    );
}

/// The Python example in the docs verifies a real signed delivery and
/// refuses a tampered body, another secret and an old timestamp.
#[tokio::test]
async fn the_python_example_verifies_a_real_delivery() {
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
    let run = |secret: &str, header: &str, body: &[u8]| -> bool {
        let mut child = Command::new("python3")
            .arg(script)
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
    assert!(run(SECRET, &header, &body), "the real delivery verifies");
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert!(!run(SECRET, &header, &tampered), "a changed body");
    assert!(!run("whsec_other", &header, &body), "another secret");
    let old = unix_now() - 301;
    let replayed =
        carewatch_core::notification::delivery::signature_header(SECRET.as_bytes(), old, &body);
    assert!(!run(SECRET, &replayed, &body), "older than 5 minutes");
    assert!(!run(SECRET, "garbage", &body), "no signature");
}
