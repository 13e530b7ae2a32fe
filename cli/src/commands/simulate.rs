//! `carewatch simulate`: a fleet of recording servers against a running
//! server, over gRPC + TLS, with scripted faults.

use std::time::Duration;

use crate::simulate::Fleet;
use carewatch_core::ConditionCode;
use carewatch_core::condition::ReportedCondition;
use carewatch_core::ids::{ResellerId, Slc};
use carewatch_grpc::proto::{self, admin_client::AdminClient, ingest_client::IngestClient};

use super::{CliResult, Connection, parse_duration, parse_period};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Server and operator token: the simulator registers its own installations.
    #[command(flatten)]
    connection: Connection,
    /// Reseller that owns the simulated installations (created if missing).
    #[arg(long, default_value = "simulated")]
    reseller: String,
    /// Number of installations.
    #[arg(long, default_value_t = 10)]
    installations: usize,
    /// Recording servers per installation.
    #[arg(long, default_value_t = 2)]
    servers: usize,
    /// Heartbeat interval (use the server's; every acknowledgement returns it).
    #[arg(long, default_value = "60s", value_parser = parse_period)]
    interval: Duration,
    /// How long to run.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    duration: Duration,
    /// Messages in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// A scripted fault, `<after>:<fault>:<installation number>`, e.g.
    /// `30s:silent:1`. Faults: silent (its rs-1 stops), link-down (the whole
    /// site goes quiet), disk-full, camera-down, recover (all back to normal).
    #[arg(long = "fault", value_parser = parse_fault)]
    faults: Vec<Fault>,
}

#[derive(Debug, Clone)]
pub struct Fault {
    after: Duration,
    kind: FaultKind,
    site: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultKind {
    Silent,
    LinkDown,
    DiskFull,
    CameraDown,
    Recover,
}

fn parse_fault(text: &str) -> Result<Fault, String> {
    let mut parts = text.split(':');
    let (Some(after), Some(kind), Some(site), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!(
            "{text:?}: expected <after>:<fault>:<installation number>, e.g. 30s:silent:1"
        ));
    };
    let kind = match kind {
        "silent" => FaultKind::Silent,
        "link-down" => FaultKind::LinkDown,
        "disk-full" => FaultKind::DiskFull,
        "camera-down" => FaultKind::CameraDown,
        "recover" => FaultKind::Recover,
        other => {
            return Err(format!(
                "unknown fault {other:?}: silent, link-down, disk-full, camera-down or recover"
            ));
        }
    };
    let site = site
        .parse::<usize>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("{site:?} is not an installation number (1, 2, ...)"))?;
    Ok(Fault {
        after: parse_duration(after)?,
        kind,
        site,
    })
}

fn site_slc(n: usize) -> CliResult<Slc> {
    Ok(Slc::new(&format!("SIM-{n:06}"))?)
}

fn apply(fleet: &mut Fleet, fault: &Fault) -> CliResult {
    let slc = site_slc(fault.site)?;
    match fault.kind {
        FaultKind::Silent => fleet
            .server_mut(&slc, "rs-1")
            .into_iter()
            .for_each(|s| s.silent = true),
        FaultKind::LinkDown => fleet.site_mut(&slc).for_each(|s| s.silent = true),
        FaultKind::DiskFull => {
            let full =
                ReportedCondition::new(ConditionCode::StorageFull, "D:\\Recordings", "100% used")?;
            fleet
                .server_mut(&slc, "rs-1")
                .into_iter()
                .for_each(|s| s.set_conditions(vec![full.clone()]));
        }
        FaultKind::CameraDown => {
            let down =
                ReportedCondition::new(ConditionCode::CameraUnreachable, "Camera 1", "no answer")?;
            fleet
                .server_mut(&slc, "rs-1")
                .into_iter()
                .for_each(|s| s.set_conditions(vec![down.clone()]));
        }
        FaultKind::Recover => fleet.site_mut(&slc).for_each(|s| {
            s.silent = false;
            s.set_conditions(Vec::new());
        }),
    }
    println!("fault: {:?} at installation {slc}", fault.kind);
    Ok(())
}

pub async fn run(args: SimulateArgs) -> CliResult {
    let channel = args.connection.channel().await?;
    let mut admin = AdminClient::with_interceptor(channel.clone(), args.connection.bearer()?);
    let reseller = ResellerId::new(&args.reseller)?;
    let request = proto::CreateResellerRequest {
        id: reseller.to_string(),
        name: args.reseller.clone(),
    };
    match admin.create_reseller(request).await {
        Ok(r) => println!(
            "reseller {reseller} created; its token: {}",
            r.into_inner().token
        ),
        Err(status) if status.code() == tonic::Code::AlreadyExists => {
            println!("using existing reseller {reseller}")
        }
        Err(status) => return Err(status.into()),
    }
    let mut fleet = Fleet::default();
    for n in 1..=args.installations {
        let slc = site_slc(n)?;
        match fleet
            .provision(
                &mut admin,
                &reseller,
                &slc,
                ("XProtect Corporate", "2016"),
                args.servers,
            )
            .await
        {
            Ok(()) => {}
            Err(status) if status.code() == tonic::Code::AlreadyExists => {
                return Err(format!(
                    "{slc} is already registered: simulate against a fresh server"
                )
                .into());
            }
            Err(status) => return Err(status.into()),
        }
    }
    println!(
        "{} installations x {} servers, heartbeat every {:?}",
        args.installations, args.servers, args.interval
    );

    let ingest = IngestClient::new(channel);
    let start = tokio::time::Instant::now();
    let mut faults = args.faults.clone();
    faults.sort_by_key(|f| f.after);
    let mut faults = faults.into_iter().peekable();
    let mut tick = tokio::time::interval(args.interval);
    let (mut accepted, mut refused) = (0usize, 0usize);
    let end = start + args.duration;
    // The run ends at `end`, not at the first tick after it; and also when
    // rounds take longer than the interval (the tick is then always due,
    // and timeout_at polls it before its deadline).
    while tokio::time::Instant::now() < end
        && tokio::time::timeout_at(end, tick.tick()).await.is_ok()
    {
        while let Some(fault) = faults.next_if(|f| f.after <= start.elapsed()) {
            apply(&mut fleet, &fault)?;
        }
        let round = fleet.round(&ingest, args.concurrency).await;
        accepted += round.accepted;
        refused += round.refused;
        if let Some(code) = round.first_refusal {
            println!(
                "{} messages refused this round (first: {code:?})",
                round.refused
            );
        }
    }
    println!("done: {accepted} messages accepted, {refused} refused");
    if accepted == 0 && refused > 0 {
        return Err(format!("every message was refused ({refused})").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse() {
        let f = parse_fault("30s:link-down:2").unwrap();
        assert_eq!(
            (f.after, f.kind, f.site),
            (Duration::from_secs(30), FaultKind::LinkDown, 2)
        );
        assert!(parse_fault("30s:meteor:1").is_err());
        assert!(parse_fault("30s:silent:0").is_err());
        assert!(parse_fault("silent").is_err());
    }
}
