//! Email over SMTP: the message's parts and headers, STARTTLS and implicit
//! TLS with a password, servers not to be used, refusals, and no server set.

use std::time::Duration;

use carewatch_core::OpenedChannel;
use carewatch_core::notification::Destination;
use carewatch_notify::testing::smtp::{Security, SmtpServer};
use carewatch_notify::{Attempt, Sender, SenderOptions, SmtpSettings, parse_mailbox};

use crate::fixtures::{entry, opened, sender_trusting};

const WAIT: Duration = Duration::from_secs(5);

fn smtp_sender(server: &SmtpServer) -> Sender {
    Sender::new(SenderOptions {
        smtp: Some(SmtpSettings {
            url: server.url().parse().expect("SMTP URL"),
            from: parse_mailbox("Carewatch <carewatch@alerts.example.net>").expect("from"),
        }),
        extra_roots_pem: server.cert_pem().map(|p| p.as_bytes().to_vec()),
        timeout: Duration::from_secs(5),
        proxy: None,
        allow_private_addresses: false, // SMTP is the operator's: never filtered
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
    // Both are the operator's settings, not the channel's: deferred (not
    // counted as attempts), never sent in the clear or to an unknown server.
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
    assert!(matches!(attempt, Attempt::Deferred(_)), "{attempt:?}");
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
    assert!(matches!(attempt, Attempt::Deferred(_)), "{attempt:?}");
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
    // A refused sign-in is the operator's to fix: deferred, not counted.
    let refused = sender.send(&channel, &entry).await;
    let Attempt::Deferred(error) = &refused else {
        panic!("a wrong password is deferred: {refused:?}");
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
        matches!(&attempt, Attempt::Deferred(e) if e.contains("--smtp-url")),
        "{attempt:?}"
    );
}
