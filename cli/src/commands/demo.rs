//! `carewatch demo`: the whole product in under a minute, on a temporary
//! directory: a real server over TLS, two resellers, simulated sites, and
//! the faults Carewatch exists for.

use std::sync::Arc;
use std::time::Duration;

use crate::server::{ServeOptions, serve};
use crate::simulate::Fleet;
use crate::tls::TlsIdentity;
use carewatch_core::availability::AvailabilityPolicy;
use carewatch_core::condition::ReportedCondition;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_core::seal::MasterKey;
use carewatch_core::team::{Login, Password, Role};
use carewatch_core::time::SystemClock;
use carewatch_core::{Carewatch, ConditionCode, Config};
use carewatch_grpc::client::{Bearer, connect};
use carewatch_grpc::proto::{
    self, admin_client::AdminClient, dashboard_client::DashboardClient, ingest_client::IngestClient,
};
use carewatch_storage_sqlite::SqliteStore;
use futures::StreamExt;

use super::CliResult;
use super::dashboard::{Listing, print_overview};

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Heartbeat interval of the simulated servers (short, so the demo is quick).
    #[arg(long, default_value = "1s", value_parser = super::parse_period)]
    interval: Duration,
    /// Keep the server and the simulated fleet running after the script,
    /// with faults coming and going, to watch the web page live (Ctrl-C ends it).
    #[arg(long)]
    web: bool,
    /// Where to listen (the web page is at https://localhost:<port>/).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

fn slc(text: &str) -> CliResult<Slc> {
    Ok(Slc::new(text)?)
}

fn condition(code: ConditionCode, subject: &str, detail: &str) -> CliResult<ReportedCondition> {
    Ok(ReportedCondition::new(code, subject, detail)?)
}

fn step(text: &str) {
    println!("\n\x1b[1m▶ {text}\x1b[0m");
}

async fn round(fleet: &mut Fleet, ingest: &IngestClient<tonic::transport::Channel>) {
    let report = fleet.round(ingest, 32).await;
    if report.refused > 0 {
        println!(
            "  ({} messages refused: {:?})",
            report.refused, report.first_refusal
        );
    }
}

pub async fn run(args: DemoArgs) -> CliResult {
    let dir = tempfile::tempdir()?;
    step(&format!(
        "Starting a Carewatch server over TLS on SQLite in {}",
        dir.path().display()
    ));
    let store = Arc::new(SqliteStore::open(dir.path().join("carewatch.db")).await?);
    let config = Config::new(MasterKey::generate())
        .with_heartbeat_interval(args.interval)?
        .with_policy(AvailabilityPolicy::new(3, args.interval / 4)?);
    let carewatch = Carewatch::open(store, Arc::new(SystemClock), config).await?;
    let operator = carewatch
        .ensure_operator(&ResellerId::new("admin")?)
        .await?
        .ok_or("fresh database has an operator")?;
    let (tls, _) = TlsIdentity::self_signed_in(dir.path(), &[])?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let url = format!("https://localhost:{}", listener.local_addr()?.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions {
        tls: Some(tls.clone()),
        maintenance_every: args.interval / 4,
        ..ServeOptions::default()
    };
    let server = tokio::spawn(serve(carewatch.clone(), listener, options, async {
        let _ = stopped.await;
    }));
    let channel = connect(&url, Some(&tls.cert_pem)).await?;
    println!(
        "  listening on {url}, certificate SHA-256 {}",
        tls.fingerprint().unwrap_or_default()
    );

    step("The operator creates two resellers and registers their customers' SLCs");
    let mut admin = AdminClient::with_interceptor(
        channel.clone(),
        Bearer::new(&operator.token).ok_or("token")?,
    );
    let (north, harbor) = (
        ResellerId::new("northwind-security")?,
        ResellerId::new("harbor-integration")?,
    );
    let mut tokens = Vec::new();
    for (id, name) in [
        (&north, "Northwind Security"),
        (&harbor, "Harbor Integration"),
    ] {
        let token = admin
            .create_reseller(proto::CreateResellerRequest {
                id: id.to_string(),
                name: name.into(),
            })
            .await?
            .into_inner()
            .token;
        tokens.push(Bearer::new(&token).ok_or("token")?);
        println!("  reseller {id} created (its token is printed only to it)");
    }
    let (hq, warehouse, depot, marina) = (
        slc("M01-HQ-0001")?,
        slc("M01-WAREHOUSE-0002")?,
        slc("M01-DEPOT-0003")?,
        slc("M01-MARINA-0101")?,
    );
    let mut fleet = Fleet::default();
    fleet
        .provision(
            &mut admin,
            &north,
            &hq,
            ("XProtect Corporate", "2016 R3"),
            3,
        )
        .await?;
    fleet
        .provision(
            &mut admin,
            &north,
            &warehouse,
            ("XProtect Expert", "2016"),
            2,
        )
        .await?;
    fleet
        .provision(
            &mut admin,
            &north,
            &depot,
            ("Milestone Husky M50", "2016"),
            1,
        )
        .await?;
    fleet
        .provision(
            &mut admin,
            &harbor,
            &marina,
            ("XProtect Professional", "2013"),
            2,
        )
        .await?;
    println!(
        "  4 installations, 8 recording servers, heartbeat every {:?}",
        args.interval
    );
    let (login, password) = demo_admin(&carewatch, &north).await?;
    step(&format!(
        "The web page: open {url}/ and sign in as {login} with password {password}"
    ));
    println!(
        "  (the certificate is self-signed: {}; its SHA-256 is above)",
        dir.path().join("cert.pem").display()
    );

    let ingest = IngestClient::new(channel.clone());
    let mut north_view = DashboardClient::with_interceptor(channel.clone(), tokens[0].clone());
    let mut harbor_view = DashboardClient::with_interceptor(channel.clone(), tokens[1].clone());
    let mut live = north_view
        .watch(proto::WatchRequest::default())
        .await?
        .into_inner();
    let watcher = tokio::spawn(async move {
        while let Some(Ok(event)) = live.next().await {
            if let Some(proto::watch_event::Event::Changed(c)) = event.event {
                let health = |h: i32| {
                    proto::Health::try_from(h)
                        .map_or("?", |h| h.as_str_name().trim_start_matches("HEALTH_"))
                };
                let now = c.summary.as_ref().map_or(0, |s| s.health);
                if now == c.previous {
                    continue; // counts changed, health did not
                }
                println!(
                    "  \x1b[2mlive ▸ {} {} → {}\x1b[0m",
                    c.slc,
                    health(c.previous),
                    health(now)
                );
            }
        }
    });

    let tick = tokio::time::interval(args.interval);
    tokio::pin!(tick);
    step("Every recording server reports in");
    for _ in 0..2 {
        tick.tick().await;
        round(&mut fleet, &ingest).await;
    }
    print_overview(&mut north_view, &Listing::everything(), false).await?;

    step("A recording drive fills at the warehouse; a camera drops at HQ");
    if let Some(s) = fleet.server_mut(&warehouse, "rs-1") {
        s.set_conditions(vec![condition(
            ConditionCode::StorageFull,
            "E:\\Archive",
            "100% used",
        )?]);
    }
    if let Some(s) = fleet.server_mut(&hq, "rs-1") {
        s.set_conditions(vec![condition(
            ConditionCode::CameraUnreachable,
            "Camera 12 (Parking)",
            "no answer",
        )?]);
    }
    tick.tick().await;
    round(&mut fleet, &ingest).await;

    step("The depot loses its Internet link; HQ's rs-3 stops sending heartbeats");
    fleet.site_mut(&depot).for_each(|s| s.silent = true);
    if let Some(s) = fleet.server_mut(&hq, "rs-3") {
        s.silent = true;
    }
    for _ in 0..5 {
        tick.tick().await;
        round(&mut fleet, &ingest).await;
    }
    print_overview(&mut north_view, &Listing::default(), false).await?;

    step("rs-3 comes back, the warehouse drive is cleaned up");
    if let Some(s) = fleet.server_mut(&hq, "rs-3") {
        s.silent = false;
    }
    if let Some(s) = fleet.server_mut(&warehouse, "rs-1") {
        s.set_conditions(Vec::new());
    }
    for _ in 0..2 {
        tick.tick().await;
        round(&mut fleet, &ingest).await;
    }
    print_overview(&mut north_view, &Listing::default(), false).await?;
    let detail = north_view
        .get_installation(proto::GetInstallationRequest {
            slc: hq.to_string(),
        })
        .await?
        .into_inner();
    println!("  HQ history, newest first:");
    for event in detail.history.iter().take(6) {
        use proto::history_event::Kind;
        let text = match &event.kind {
            Some(Kind::Recovered(r)) => format!(
                "recovered after {:.1}s unavailable, {} heartbeats missed",
                r.unavailable_for
                    .as_ref()
                    .map_or(0.0, |d| d.seconds as f64 + f64::from(d.nanos) / 1e9),
                r.missed_heartbeats
            ),
            Some(Kind::BecameUnavailable(u)) => {
                format!("unavailable: {} heartbeats missed", u.missed_heartbeats)
            }
            Some(Kind::ConditionOpened(c)) => format!("{} opened on {}", c.code, c.subject),
            Some(Kind::ConditionResolved(c)) => format!("{} resolved on {}", c.code, c.subject),
            Some(Kind::FirstSeen(_)) => "first report".to_owned(),
            Some(Kind::Decommissioned(_)) => "decommissioned".to_owned(),
            Some(Kind::Recommissioned(_)) => "reported again after being decommissioned".to_owned(),
            Some(Kind::Parked(_)) => "not judged: messages refused".to_owned(),
            Some(Kind::Resumed(_)) => "judged again: messages accepted".to_owned(),
            None => "?".to_owned(),
        };
        println!("    {:<6} {text}", event.recording_server_id);
    }

    step("Northwind's uptime over the last day (carewatch report --days 1)");
    let report = north_view
        .get_uptime_report(proto::GetUptimeReportRequest {
            period: Some(proto::get_uptime_report_request::Period::LastDays(1)),
            slc: String::new(),
        })
        .await?
        .into_inner();
    print!("{}", super::report::table(&report));

    step("Harbor Integration sees only its own customer, never Northwind's");
    print_overview(&mut harbor_view, &Listing::everything(), false).await?;
    let other = harbor_view
        .get_installation(proto::GetInstallationRequest {
            slc: hq.to_string(),
        })
        .await;
    match other {
        Err(status) if status.code() == tonic::Code::NotFound => {
            println!(
                "  Harbor asking for {hq}: NOT_FOUND — \"{}\"",
                status.message()
            );
        }
        Err(status) => {
            return Err(format!(
                "expected NOT_FOUND for another reseller's installation, got {status}"
            )
            .into());
        }
        Ok(_) => return Err("another reseller's installation was visible".into()),
    }

    if args.web {
        step("Running on: faults come and go every few seconds; Ctrl-C stops");
        keep_running(&mut fleet, &ingest, &hq, &warehouse, args.interval).await?;
    }

    step("Stopping the server");
    watcher.abort();
    let _ = stop.send(());
    server.await??;
    println!("  done.");
    Ok(())
}

/// A Northwind admin who can sign in to the web page: invited and accepted
/// in-process, with a fresh random password (printed, never stored in clear).
async fn demo_admin(carewatch: &Carewatch, reseller: &ResellerId) -> CliResult<(Login, String)> {
    let login = Login::new("admin@northwind.example")?;
    let invitation = carewatch
        .invite_user(reseller, &login, "Demo admin", Role::Admin, None)
        .await?;
    // Sixteen hex digits of a fresh random secret.
    let secret = carewatch_core::team::issue_secret("demo");
    let password = secret.token.get(5..21).unwrap_or_default().to_owned();
    carewatch
        .accept_invitation(&invitation.secret.token, Password::new(&password)?, None)
        .await?;
    Ok((login, password))
}

/// Faults coming and going on a timer, until Ctrl-C.
async fn keep_running(
    fleet: &mut Fleet,
    ingest: &IngestClient<tonic::transport::Channel>,
    hq: &Slc,
    warehouse: &Slc,
    interval: Duration,
) -> CliResult {
    let mut tick = tokio::time::interval(interval);
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    for n in 0u64.. {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            _ = tick.tick() => {}
        }
        // A cycle of 24 ticks: a drive fills and is cleaned, a server drops out and returns.
        match n % 24 {
            3 => {
                if let Some(s) = fleet.server_mut(warehouse, "rs-2") {
                    s.set_conditions(vec![condition(
                        ConditionCode::StorageFull,
                        "F:\\Recordings",
                        "100% used",
                    )?]);
                }
            }
            9 => {
                if let Some(s) = fleet.server_mut(hq, "rs-2") {
                    s.silent = true;
                }
            }
            15 => {
                if let Some(s) = fleet.server_mut(warehouse, "rs-2") {
                    s.set_conditions(Vec::new());
                }
            }
            20 => {
                if let Some(s) = fleet.server_mut(hq, "rs-2") {
                    s.silent = false;
                }
            }
            _ => {}
        }
        round(fleet, ingest).await;
    }
    Ok(())
}
