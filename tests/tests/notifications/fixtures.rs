//! Shared fixtures of the notification tests: the HTTPS and SMTP receivers
//! and the emails as read, the channels created before the server starts,
//! simulated sites, health waits, the site-offline problem check, and a
//! second `carewatch serve` node on the same database.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carewatch_cli::simulate::{Fleet, provision_site};
use carewatch_cli::store::{IfMissing, OpenOptions, StoreTarget, master_key, open_store};
use carewatch_core::health::Health;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::notification::delivery::verify_signature;
use carewatch_core::notification::{ChannelRules, Destination};
use carewatch_core::store::Store;
use carewatch_core::team::{Login, Role, User};
use carewatch_core::time::SystemClock;
use carewatch_core::{Carewatch, Config};
use carewatch_notify::testing::http::{Received, Receiver};
use carewatch_notify::testing::smtp::{Mail, Security, SmtpServer};
use carewatch_tests::process::{ServeConfig, ServerProcess, Storage, binary};
use tokio::task::JoinHandle;

const INTERVAL: Duration = Duration::from_secs(1);
const JITTER: Duration = Duration::from_millis(200);
/// The channels' hold (flap damping).
pub(crate) const HOLD: Duration = Duration::from_secs(3);
/// Longest wait for something that should happen within a few seconds.
pub(crate) const SOON: Duration = Duration::from_secs(30);
/// How long to watch for a message that must not come.
pub(crate) const QUIET: Duration = Duration::from_secs(3);
const RESELLER: &str = "acme";

pub(crate) fn reseller() -> ResellerId {
    ResellerId::new(RESELLER).expect("reseller id")
}

/// The receivers every test uses, and the file of certificates the server
/// trusts for them.
pub(crate) struct Receivers {
    pub(crate) webhook: Receiver,
    smtp: SmtpServer,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receivers {
    pub(crate) async fn start() -> Self {
        let webhook = Receiver::start_tls().await;
        let smtp = SmtpServer::start(Security::StartTls, Some(("alerts@acme", "smtp p@ss"))).await;
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca_file = dir.path().join("trusted.pem");
        let pem = format!(
            "{}{}",
            webhook.cert_pem().unwrap_or_default(),
            smtp.cert_pem().unwrap_or_default()
        );
        std::fs::write(&ca_file, pem).expect("certificates written");
        Self {
            webhook,
            smtp,
            ca_file,
            _dir: dir,
        }
    }

    /// Webhook requests about `slc`.
    pub(crate) fn webhooks(&self, slc: &str) -> Vec<Received> {
        self.webhook
            .received()
            .into_iter()
            .filter(|r| r.json()["installation"]["slc"] == slc)
            .collect()
    }

    /// Emails about `slc`.
    pub(crate) fn emails(&self, slc: &str) -> Vec<Email> {
        self.smtp
            .mail()
            .iter()
            .map(Email::parse)
            .filter(|e| e.subject.contains(slc))
            .collect()
    }

    /// Waits until `n` webhook requests about `slc` were answered 2xx and
    /// `emails` emails about it came.
    pub(crate) async fn wait_for(&self, slc: &str, n: usize, emails: usize, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let accepted = self
                .webhooks(slc)
                .iter()
                .filter(|r| r.answered.is_some_and(|s| (200..300).contains(&s)))
                .count();
            if accepted >= n && self.emails(slc).len() >= emails {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{slc}: expected {n} webhooks and {emails} emails within {within:?}, got {} and {}",
                accepted,
                self.emails(slc).len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn serve_args(&self) -> Vec<String> {
        vec![
            "--heartbeat-interval".into(),
            format!("{}ms", INTERVAL.as_millis()),
            "--jitter".into(),
            format!("{}ms", JITTER.as_millis()),
            "--smtp-url".into(),
            self.smtp.url(),
            "--smtp-from".into(),
            "Carewatch <carewatch@alerts.example.net>".into(),
            "--notify-ca-cert".into(),
            self.ca_file.display().to_string(),
            // The test's receivers are on loopback.
            "--allow-private-webhooks".into(),
        ]
    }
}

/// An email as the test reads it.
#[derive(Debug)]
pub(crate) struct Email {
    pub(crate) subject: String,
    key: String,
    message_id: String,
    text: String,
    html: String,
    to: Vec<String>,
    tls: bool,
    user: Option<String>,
}

impl Email {
    fn parse(mail: &Mail) -> Self {
        use mailparse::MailHeaderMap;
        let parsed = mailparse::parse_mail(&mail.data).expect("a MIME message");
        let part = |mime: &str| {
            parsed
                .subparts
                .iter()
                .find(|p| p.ctype.mimetype == mime)
                .and_then(|p| p.get_body().ok())
                .unwrap_or_default()
        };
        Self {
            subject: parsed
                .headers
                .get_first_value("Subject")
                .unwrap_or_default(),
            key: parsed
                .headers
                .get_first_value("X-Carewatch-Idempotency-Key")
                .unwrap_or_default(),
            message_id: parsed
                .headers
                .get_first_value("Message-ID")
                .unwrap_or_default(),
            text: part("text/plain"),
            html: part("text/html"),
            to: mail.to.clone(),
            tls: mail.tls,
            user: mail.user.clone(),
        }
    }
}

/// What a test set up before the server started.
pub(crate) struct Prepared {
    /// The webhook channel's signing secret.
    pub(crate) secret: String,
}

/// Creates the reseller and its channels (a webhook to the HTTPS receiver,
/// email to the SMTP server), through the facade on the server's database.
pub(crate) async fn prepare(data_dir: &Path, storage: &Storage, receivers: &Receivers) -> Prepared {
    let db = data_dir.join("carewatch.db");
    let target = match storage {
        Storage::Sqlite => StoreTarget::Sqlite(&db),
        Storage::Postgres { url, .. } => StoreTarget::Postgres(url),
    };
    let schema = match storage {
        Storage::Sqlite => None,
        Storage::Postgres { schema, .. } => Some(schema.as_str()),
    };
    let (key, _) =
        master_key(&target, None, Some(data_dir), IfMissing::Create).expect("master key");
    let store = open_store(
        &target,
        &OpenOptions {
            schema,
            application_name: None,
            existing: false,
        },
    )
    .await
    .expect("store");
    let carewatch = Carewatch::open(store, Arc::new(SystemClock), Config::new(key))
        .await
        .expect("opens");
    carewatch
        .create_reseller(&reseller(), "ACME Security")
        .await
        .expect("reseller");
    let admin = User {
        reseller: reseller(),
        login: Login::new("admin@acme.example").expect("login"),
        name: "Admin".into(),
        role: Role::Admin,
        created_at: carewatch.now(),
    };
    let rules = ChannelRules {
        hold: HOLD,
        ..ChannelRules::default()
    };
    let (_, secret) = carewatch
        .create_channel(
            &admin,
            "ops webhook",
            Destination::Webhook {
                url: receivers.webhook.url("/carewatch/events?tenant=acme"),
            },
            rules.clone(),
        )
        .await
        .expect("webhook channel");
    carewatch
        .create_channel(
            &admin,
            "ops email",
            Destination::Email {
                to: vec!["ops@acme.example".into()],
            },
            rules,
        )
        .await
        .expect("email channel");
    Prepared {
        secret: secret.expect("signing secret").to_string(),
    }
}

/// A store on the server's database, for reading what it did.
pub(crate) async fn store_of(data_dir: &Path, storage: &Storage) -> Arc<dyn Store> {
    let db = data_dir.join("carewatch.db");
    let (target, schema) = match storage {
        Storage::Sqlite => (StoreTarget::Sqlite(&db), None),
        Storage::Postgres { url, schema } => (StoreTarget::Postgres(url), Some(schema.as_str())),
    };
    open_store(
        &target,
        &OpenOptions {
            schema,
            application_name: None,
            existing: false,
        },
    )
    .await
    .expect("store")
}

/// A site: its recording servers send every 300 ms until silenced.
pub(crate) struct Site {
    pub(crate) slc: String,
    silent: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Site {
    pub(crate) async fn start(server: &ServerProcess, slc: &str, servers: usize) -> Self {
        let mut admin = server.admin().await;
        let sims = provision_site(
            &mut admin,
            &reseller(),
            &Slc::new(slc).expect("slc"),
            ("XProtect Corporate", "2016"),
            servers,
        )
        .await
        .expect("site provisioned");
        let client = server.ingest().await;
        let silent = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let silent = silent.clone();
            async move {
                let mut fleet = Fleet { servers: sims };
                loop {
                    if !silent.load(Ordering::Acquire) {
                        // Refusals while the server restarts are retried
                        // by the next round.
                        fleet.round(&client, 4).await;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        });
        Self {
            slc: slc.to_owned(),
            silent,
            task,
        }
    }

    pub(crate) fn silence(&self) {
        self.silent.store(true, Ordering::Release);
    }

    pub(crate) fn resume(&self) {
        self.silent.store(false, Ordering::Release);
    }

    pub(crate) fn slc(&self) -> Slc {
        Slc::new(&self.slc).expect("slc")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn health(store: &Arc<dyn Store>, slc: &Slc) -> Option<Health> {
    store
        .installation_detail(&reseller(), slc, 0)
        .await
        .ok()
        .flatten()
        .map(|d| d.summary.health)
}

pub(crate) async fn wait_health(store: &Arc<dyn Store>, slc: &Slc, wanted: Health) {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let now = health(store, slc).await;
        if now == Some(wanted) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{slc} is {now:?}, not {wanted:?}, after {SOON:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn start_config(
    data_dir: &Path,
    storage: Storage,
    receivers: &Receivers,
) -> ServeConfig {
    ServeConfig::new(binary(env!("CARGO_BIN_EXE_carewatch-under-test")), data_dir)
        .storage(storage)
        .args(receivers.serve_args())
}

/// Checks the webhook request and the email of a site-offline problem.
pub(crate) fn assert_offline_problem(
    request: &Received,
    email: &Email,
    secret: &str,
    slc: &str,
    servers: usize,
) {
    let body = request.json();
    assert_eq!(body["schema"], "carewatch.notification.v1");
    assert_eq!(body["kind"], "problem", "{body}");
    assert_eq!(
        as_documented(&body),
        as_documented(&documented_offline_problem()),
        "NOTIFICATIONS.md's example is what a site of three going Offline sends: {body}"
    );
    assert_eq!(body["installation"]["health"], "offline", "{body}");
    assert_eq!(body["installation"]["offline"], true);
    let down: Vec<&str> = body["servers_down"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["id"].as_str()).collect())
        .unwrap_or_default();
    let expected: Vec<String> = (1..=servers).map(|n| format!("rs-{n}")).collect();
    assert_eq!(down, expected, "one message listing every server: {body}");
    assert!(
        body["title"]
            .as_str()
            .is_some_and(|t| t.contains("Offline"))
    );
    assert_eq!(request.path, "/carewatch/events?tenant=acme");
    assert_eq!(request.header("idempotency-key"), body["id"].as_str());
    assert!(
        verify_signature(
            secret.as_bytes(),
            request.header("carewatch-signature").unwrap_or_default(),
            &request.body,
            unix_now()
        ),
        "signed with the channel's secret"
    );

    assert!(
        email.subject.contains(slc) && email.subject.contains("Offline"),
        "{email:?}"
    );
    assert!(
        !email.key.is_empty() && email.message_id.contains(&email.key),
        "{email:?}"
    );
    assert_eq!(email.to, ["ops@acme.example"]);
    assert!(email.tls, "STARTTLS");
    assert_eq!(email.user.as_deref(), Some("alerts@acme"));
    for id in &expected {
        assert!(
            email.text.contains(&format!("{id}: unavailable since")),
            "{}",
            email.text
        );
        assert!(
            email.html.contains(&format!("<td>{id}</td>")),
            "{}",
            email.html
        );
    }
}

/// Another `carewatch serve` on the same database, without the harness.
pub(crate) struct SecondNode {
    child: std::process::Child,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl SecondNode {
    pub(crate) async fn start(config: &ServeConfig) -> Self {
        use std::io::BufRead;
        let mut command = std::process::Command::new(&config.binary);
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&config.data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", config.port));
        if let Storage::Postgres { url, schema } = &config.storage {
            command
                .args(["--database-url", url])
                .args(["--database-schema", schema]);
        }
        let mut child = command
            .args(&config.args)
            .env_remove("CAREWATCH_NODE_ID")
            // Deliveries are logged at debug: the tests count them.
            .env("RUST_LOG", "info,carewatch_notify=debug")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("carewatch serve starts");
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn({
            let lines = lines.clone();
            move || {
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    lines
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(line);
                }
            }
        });
        let node = Self { child, lines };
        let deadline = tokio::time::Instant::now() + SOON;
        while !node.log().contains("carewatch listening on") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the second node does not listen:\n{}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        node
    }

    pub(crate) fn log(&self) -> String {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .join("\n")
    }
}

impl Drop for SecondNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- second node output ---\n{}", self.log());
        }
    }
}

/// The example document in NOTIFICATIONS.md (a site of three servers going
/// Offline), which a receiver's author copies.
fn documented_offline_problem() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../NOTIFICATIONS.md");
    let text = std::fs::read_to_string(path).expect("NOTIFICATIONS.md");
    let section = text
        .split_once("### The notification document")
        .expect("the document's section")
        .1;
    let block = section
        .split_once("```json\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a json block")
        .0;
    serde_json::from_str(block).expect("the example is JSON")
}

/// `document` with what differs from one run to the next (its id, times,
/// SLC and product) replaced by placeholders; everything else must match.
fn as_documented(document: &serde_json::Value) -> serde_json::Value {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let slc = text(&document["installation"]["slc"]);
    let product = text(&document["installation"]["product"]);
    let mut normalised = placeholders(document, &slc, &product);
    normalised["id"] = "<id>".into();
    // A sweep that runs late finds more than three missed.
    if let Some(down) = normalised["servers_down"].as_array_mut() {
        for server in down {
            if server["missed"].as_u64().is_some_and(|m| m >= 3) {
                server["missed"] = "<3 or more>".into();
            }
        }
    }
    // Conditions come in the order they opened, which the servers' clocks
    // decide; which ones is what must match.
    if let Some(conditions) = normalised["conditions"].as_array_mut() {
        conditions.sort_by_key(|c| c["server"].as_str().map(str::to_owned));
    }
    normalised
}

fn placeholders(value: &serde_json::Value, slc: &str, product: &str) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if is_rfc3339_utc(s) => "<time>".into(),
        Value::String(s) => s.replace(slc, "<slc>").replace(product, "<product>").into(),
        Value::Array(items) => items
            .iter()
            .map(|v| placeholders(v, slc, product))
            .collect(),
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| (k.clone(), placeholders(v, slc, product)))
            .collect(),
        other => other.clone(),
    }
}

fn is_rfc3339_utc(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && s.ends_with('Z')
}
