//! The world the dispatcher's tests run in: a real store (SQLite) with a
//! clock the test moves, a reseller with a webhook channel, and a real HTTP
//! receiver.

// Each test file uses a part of it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carewatch_core::ids::ResellerId;
use carewatch_core::notification::{
    ChannelId, ChannelRules, Destination, NewOutboxEntry, OutboxEntry, OutboxFilter, payload,
};
use carewatch_core::seal::MasterKey;
use carewatch_core::store::Store;
use carewatch_core::store::limits::test_key_prefix;
use carewatch_core::team::{Login, Role, User};
use carewatch_core::time::{ManualClock, Timestamp};
use carewatch_core::{Carewatch, Config};
use carewatch_notify::testing::http::Receiver;
use carewatch_notify::{Dispatcher, DispatcherOptions, Sender, SenderOptions};
use carewatch_storage_sqlite::SqliteStore;
use tokio::sync::oneshot;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct World {
    pub _dir: tempfile::TempDir,
    pub carewatch: Carewatch,
    store: Arc<SqliteStore>,
    master_key: MasterKey,
    pub clock: Arc<ManualClock>,
    pub admin: User,
    pub receiver: Receiver,
    pub channel: ChannelId,
    pub secret: String,
}

impl World {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Arc::new(
            SqliteStore::open(dir.path().join("carewatch.db"))
                .await
                .expect("SQLite"),
        );
        let clock = Arc::new(ManualClock::new(Timestamp::from(SystemTime::now())));
        let master_key = MasterKey::generate();
        let carewatch = Carewatch::open(
            store.clone(),
            clock.clone(),
            Config::new(master_key.clone()),
        )
        .await
        .expect("opens");
        let reseller = ResellerId::new("acme").expect("id");
        carewatch
            .create_reseller(&reseller, "ACME Security")
            .await
            .expect("reseller");
        let admin = User {
            reseller,
            login: Login::new("admin@acme.example").expect("login"),
            name: "Admin".into(),
            role: Role::Admin,
            created_at: carewatch.now(),
        };
        let receiver = Receiver::start().await;
        let (record, secret) = carewatch
            .create_channel(
                &admin,
                "ops hook",
                Destination::Webhook {
                    url: receiver.url("/carewatch"),
                },
                ChannelRules::default(),
            )
            .await
            .expect("channel");
        Self {
            _dir: dir,
            carewatch,
            store,
            master_key,
            clock,
            admin,
            receiver,
            channel: record.id,
            secret: secret.expect("a webhook has a signing secret").to_string(),
        }
    }

    /// Another node on the same store, master key and clock.
    pub async fn other_node(&self, node_id: &str) -> Carewatch {
        let config = Config::new(self.master_key.clone()).with_node_id(node_id);
        Carewatch::open(self.store.clone(), self.clock.clone(), config)
            .await
            .expect("opens")
    }

    /// Starts a dispatcher; stops it when the returned sender is dropped
    /// or sent to.
    pub fn dispatch(
        &self,
        shutdown_grace: Duration,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        self.dispatch_with(DispatcherOptions {
            shutdown_grace,
            ..DispatcherOptions::default()
        })
    }

    /// Starts a dispatcher with these options (looking every 50 ms).
    pub fn dispatch_with(
        &self,
        options: DispatcherOptions,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        self.dispatch_exactly(DispatcherOptions {
            every: Duration::from_millis(50),
            ..options
        })
    }

    /// Starts a dispatcher with exactly these options.
    pub fn dispatch_exactly(
        &self,
        options: DispatcherOptions,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        Self::spawn(self.carewatch.clone(), options)
    }

    /// As [`World::dispatch_with`], its attempts timed out after `timeout`.
    pub fn dispatch_timing_out(
        &self,
        options: DispatcherOptions,
        timeout: Duration,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        Self::spawn_sending(
            self.carewatch.clone(),
            DispatcherOptions {
                every: Duration::from_millis(50),
                ..options
            },
            SenderOptions {
                timeout,
                ..Self::sender_options()
            },
        )
    }

    /// As [`World::dispatch`], a dispatcher of another node
    /// ([`World::other_node`]).
    pub fn dispatch_as(
        &self,
        node: Carewatch,
        shutdown_grace: Duration,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        Self::spawn(
            node,
            DispatcherOptions {
                shutdown_grace,
                every: Duration::from_millis(50),
                ..DispatcherOptions::default()
            },
        )
    }

    fn sender_options() -> SenderOptions {
        SenderOptions {
            allow_private_addresses: true, // the test's receiver is on loopback
            ..SenderOptions::default()
        }
    }

    fn spawn(
        node: Carewatch,
        options: DispatcherOptions,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        Self::spawn_sending(node, options, Self::sender_options())
    }

    fn spawn_sending(
        node: Carewatch,
        options: DispatcherOptions,
        sender: SenderOptions,
    ) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
        let sender = Arc::new(Sender::new(sender).expect("sender"));
        let dispatcher = Dispatcher::new(node, sender, options);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            dispatcher
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        (stop, task)
    }

    pub async fn outbox(&self) -> Vec<OutboxEntry> {
        self.carewatch
            .outbox(&self.admin.reseller, OutboxFilter::All, 10)
            .await
            .expect("outbox")
    }

    /// Waits until the outbox (up to 100 entries) satisfies `done`, at
    /// most [`WAIT`]; what it holds then.
    pub async fn entries_when(&self, done: impl Fn(&[OutboxEntry]) -> bool) -> Vec<OutboxEntry> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let entries = self
                .carewatch
                .outbox(&self.admin.reseller, OutboxFilter::All, 100)
                .await
                .expect("outbox");
            if done(&entries) || tokio::time::Instant::now() > deadline {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the only entry satisfies `done`.
    pub async fn entry_when(&self, done: impl Fn(&OutboxEntry) -> bool) -> OutboxEntry {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let entries = self.outbox().await;
            assert_eq!(entries.len(), 1, "{entries:?}");
            if done(&entries[0]) {
                return entries[0].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "entry not as expected: {:?}",
                entries[0]
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl World {
    /// Queues `n` test notifications on the world's channel, straight into
    /// the outbox: "send a test" keeps only a channel's newest few on their
    /// way, and these tests want a backlog.
    pub async fn queue_tests(&self, n: usize) {
        self.queue_tests_on(&self.channel, n).await;
    }

    /// Queues `n` test notifications on `channel` (the admin's reseller's),
    /// as [`World::queue_tests`] does.
    pub async fn queue_tests_on(&self, channel: &ChannelId, n: usize) {
        let mut entries = Vec::with_capacity(n);
        for i in 0..n {
            let now = self.carewatch.now();
            let key = format!("{}{}.{i:08x}", test_key_prefix(channel), now.as_millis());
            let body = payload::test(key.clone(), self.admin.reseller.as_str(), "ops hook", now);
            entries.push(NewOutboxEntry {
                channel: channel.clone(),
                reseller: self.admin.reseller.clone(),
                slc: None,
                key,
                body: body.to_json(),
                created_at: now,
                first_attempt_at: now,
            });
            // One per millisecond, as tests made one after another are.
            self.clock.advance(Duration::from_millis(1));
        }
        self.store
            .enqueue_notifications(&entries)
            .await
            .expect("tests queued");
    }
}

/// Stops a dispatcher started by [`World::dispatch`] and waits for it,
/// at most `within`.
pub async fn stop_within(
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    within: Duration,
) {
    let _ = stop.send(());
    tokio::time::timeout(within, task)
        .await
        .expect("the dispatcher stops in time")
        .expect("the dispatcher's task ended cleanly");
}
