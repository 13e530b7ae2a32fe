//! What every test sends: a channel opened as the dispatcher would, a
//! site-offline notification with hostile text in it, its outbox entry, and
//! a sender trusting a given certificate.

use std::time::{SystemTime, UNIX_EPOCH};

use carewatch_core::OpenedChannel;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::notification::payload::{
    ConditionPart, InstallationPart, Notification, SCHEMA, ServerPart,
};
use carewatch_core::notification::{
    ChannelId, ChannelRecord, ChannelRules, DeliveryStatus, Destination, OutboxEntry,
};
use carewatch_core::team::Login;
use carewatch_core::time::Timestamp;
use carewatch_notify::{Sender, SenderOptions};
use zeroize::Zeroizing;

pub(crate) const SECRET: &str = "whsec_test_0123456789abcdef";

pub(crate) fn opened(destination: Destination) -> OpenedChannel {
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

pub(crate) fn entry(channel: &OpenedChannel, key: &str) -> OutboxEntry {
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

pub(crate) fn sender_trusting(pem: Option<&str>) -> Sender {
    Sender::new(SenderOptions {
        allow_private_addresses: true, // the test's receiver is on loopback
        extra_roots_pem: pem.map(|p| p.as_bytes().to_vec()),
        ..SenderOptions::default()
    })
    .expect("sender")
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
