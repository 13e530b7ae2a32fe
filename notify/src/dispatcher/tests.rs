//! The dispatcher's unit tests: where its store calls run, and jitter.

use super::support::jitter;
use super::*;

/// A Carewatch on SQLite, opened on `runtime`.
fn carewatch_on(runtime: &tokio::runtime::Runtime, dir: &std::path::Path) -> Carewatch {
    runtime.block_on(async {
        let store = carewatch_storage_sqlite::SqliteStore::open(dir.join("carewatch.db"))
            .await
            .expect("SQLite");
        Carewatch::open(
            Arc::new(store),
            Arc::new(carewatch_core::time::SystemClock),
            carewatch_core::Config::new(carewatch_core::seal::MasterKey::generate()),
        )
        .await
        .expect("opens")
    })
}

/// A one-worker runtime standing for the server's, its threads named
/// `the-servers-runtime`.
fn a_servers_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("the-servers-runtime")
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn store_calls_run_on_the_store_runtime_when_one_is_set() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = a_servers_runtime();
    let carewatch = carewatch_on(&server, dir.path());
    let sender = Arc::new(
        Sender::new(crate::SenderOptions {
            allow_private_addresses: true, // the test's receiver is on loopback
            ..crate::SenderOptions::default()
        })
        .expect("sender"),
    );
    let thread_of_a_call = |store_runtime: Option<Handle>| {
        let dispatcher = Dispatcher::new(
            carewatch.clone(),
            sender.clone(),
            DispatcherOptions {
                store_runtime,
                ..DispatcherOptions::default()
            },
        );
        std::thread::Builder::new()
            .name("the-dispatchers-thread".into())
            .spawn(move || {
                let own = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                own.block_on(dispatcher.on_store(|c| async move {
                    c.delivery_channels().await?;
                    Ok(std::thread::current().name().map(str::to_owned))
                }))
            })
            .expect("thread")
            .join()
            .expect("joined")
            .expect("the call")
    };
    assert_eq!(
        thread_of_a_call(Some(server.handle().clone())).as_deref(),
        Some("the-servers-runtime")
    );
    assert_eq!(
        thread_of_a_call(None).as_deref(),
        Some("the-dispatchers-thread")
    );
}

/// A Carewatch opened on a server runtime that has since stopped, that
/// runtime's handle, and a current-thread runtime to call from.
fn on_a_stopped_server(dir: &std::path::Path) -> (Carewatch, Handle, tokio::runtime::Runtime) {
    let server = tokio::runtime::Runtime::new().expect("runtime");
    let carewatch = carewatch_on(&server, dir);
    let handle = server.handle().clone();
    server.shutdown_background();
    let own = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    (carewatch, handle, own)
}

#[test]
fn a_stopped_store_runtime_means_shutting_down() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (carewatch, handle, own) = on_a_stopped_server(dir.path());
    let sender = Arc::new(
        Sender::new(crate::SenderOptions {
            allow_private_addresses: true, // the test's receiver is on loopback
            ..crate::SenderOptions::default()
        })
        .expect("sender"),
    );
    let dispatcher = Dispatcher::new(
        carewatch,
        sender,
        DispatcherOptions {
            store_runtime: Some(handle),
            ..DispatcherOptions::default()
        },
    );
    let result = own.block_on(dispatcher.on_store(|c| async move { c.delivery_channels().await }));
    assert!(matches!(result, Err(Error::ShuttingDown)), "{result:?}");
}

/// The notifier's rules run where the step is called (the notification
/// thread), its lease on the store's runtime: with that runtime stopped,
/// the step cannot begin.
#[test]
fn the_notifiers_lease_runs_on_the_store_runtime() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (carewatch, handle, own) = on_a_stopped_server(dir.path());
    let routed = own.block_on(carewatch.notify_step_on(Some(&handle), None));
    assert!(matches!(routed, Err(Error::ShuttingDown)), "{routed:?}");
    let here = own
        .block_on(carewatch.notify_step_on(None, None))
        .expect("a step on this runtime");
    assert!(here.leader, "{here:?}");
}

/// Threads of this process named `name` (at most 15 characters, as
/// `/proc` keeps them).
#[cfg(target_os = "linux")]
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("this process's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// A test database that is one store, already open.
struct OpenStore(Arc<dyn carewatch_core::store::Store>);

#[async_trait::async_trait]
impl carewatch_core::testing::TestDatabase for OpenStore {
    async fn open(&self) -> Arc<dyn carewatch_core::store::Store> {
        self.0.clone()
    }
}

/// On SQLite the notifier's reads run where the step is called (at the
/// notification thread's priority): the calling runtime starts blocking
/// threads of its own for them (nothing else in a step would), while the
/// lease and the commit still go to the server's runtime. The step tells
/// about an installation turning Critical, so it reads its states and the
/// installation; which of the two ran there the thread count cannot tell.
#[cfg(target_os = "linux")]
#[test]
fn the_notifiers_sqlite_reads_run_on_the_calling_runtime() {
    use carewatch_core::ConditionCode;
    use carewatch_core::notification::{ChannelRules, Destination};
    use carewatch_core::team::{Login, Role, User};
    use carewatch_core::testing::Fixture;

    const CALLERS: &str = "notifier-reads";
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = a_servers_runtime();
    let fx = server.block_on(async {
        let store = carewatch_storage_sqlite::SqliteStore::open(dir.path().join("carewatch.db"))
            .await
            .expect("SQLite");
        let fx = Fixture::open(&OpenStore(Arc::new(store))).await;
        let site = fx.site("acme", "M01-C01-0001").await;
        let admin = User {
            reseller: site.reseller.clone(),
            login: Login::new("admin@acme.example").expect("login"),
            name: "Admin".into(),
            role: Role::Admin,
            created_at: fx.carewatch.now(),
        };
        fx.carewatch
            .create_channel(
                &admin,
                "on call",
                Destination::Webhook {
                    url: "https://hooks.example.net/carewatch".into(),
                },
                ChannelRules {
                    hold: Duration::ZERO,
                    ..ChannelRules::default()
                },
            )
            .await
            .expect("channel");
        fx.report(
            &site,
            "rs-1",
            1,
            &[(ConditionCode::StorageFull, "D:", "recording drive full")],
        )
        .await
        .expect("a Critical report");
        fx
    });
    let own = tokio::runtime::Builder::new_current_thread()
        .thread_name(CALLERS)
        .enable_all()
        .build()
        .expect("runtime");
    assert_eq!(threads_named(CALLERS), 0);
    let step = own
        .block_on(fx.carewatch.notify_step_on(Some(server.handle()), None))
        .expect("a step");
    assert!(step.leader, "{step:?}");
    assert_eq!(step.queued, 1, "the installation turning Critical is told");
    assert!(
        threads_named(CALLERS) > 0,
        "the step's reads ran on the calling runtime's blocking threads"
    );
}

#[test]
fn jitter_is_in_range() {
    for _ in 0..1000 {
        let j = jitter();
        assert!((0.0..1.0).contains(&j), "{j}");
    }
}

/// Entries whose channels cannot be read (Carewatch's own storage failing)
/// are deferred: not an attempt, not counted towards giving up, and not a
/// failure of the channel.
#[test]
fn entries_whose_channels_cannot_be_read_are_deferred_uncounted() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let server = a_servers_runtime();
    let carewatch = carewatch_on(&server, dir.path());
    let sender = Arc::new(Sender::new(crate::SenderOptions::default()).expect("sender"));
    let dispatcher = Dispatcher::new(carewatch.clone(), sender, DispatcherOptions::default());
    let now = carewatch.now();
    let entry = OutboxEntry {
        id: 7,
        channel: carewatch_core::notification::ChannelId::generate(),
        reseller: carewatch_core::ids::ResellerId::new("alpha").expect("reseller"),
        slc: None,
        key: "k.test".into(),
        body: "{}".into(),
        created_at: now,
        attempts: carewatch_core::notification::delivery::MAX_ATTEMPTS - 1,
        next_attempt_at: now,
        last_error: None,
        delivered_at: None,
        failed_at: None,
    };
    let (id, outcome, unreachable) = server
        .block_on(dispatcher.deliver(entry, ChannelFor::Unreadable("the database is down".into())));
    assert_eq!(id, 7);
    assert!(!unreachable);
    match outcome {
        DeliveryOutcome::Deferred { at, error } => {
            assert!(at > now, "later");
            assert!(error.contains("the database is down"), "{error}");
        }
        other => panic!("deferred, not given up or counted: {other:?}"),
    }
}
