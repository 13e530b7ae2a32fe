//! `carewatch report`: a reseller's uptime report for a calendar month (or
//! the last N days) over the Dashboard service with the reseller token: a
//! table by default, or the report's CSV or JSON as the server makes them
//! (the formats are documented in `carewatch_core::report`).

use std::time::Duration;

use carewatch_grpc::proto::get_uptime_report_request::Period;
use carewatch_grpc::proto::{self, dashboard_client::DashboardClient};

use super::{CliResult, Connection};

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("period").required(true).args(["month", "days"])))]
#[command(group(clap::ArgGroup::new("format").args(["json", "csv"])))]
pub struct ReportArgs {
    #[command(flatten)]
    connection: Connection,
    /// A calendar month (UTC), e.g. 2026-11; a month not over yet is
    /// reported up to now.
    #[arg(long, value_name = "YYYY-MM")]
    month: Option<String>,
    /// The last N days up to now (1 to 366).
    #[arg(long, value_name = "N")]
    days: Option<u32>,
    /// Only this installation.
    #[arg(long)]
    slc: Option<String>,
    /// Print the report as JSON (version 1).
    #[arg(long)]
    json: bool,
    /// Print the report as CSV (RFC 4180).
    #[arg(long)]
    csv: bool,
}

/// The largest report answer the CLI reads.
const REPORT_LIMIT: usize = 1 << 30;

pub async fn run(args: ReportArgs) -> CliResult {
    let period = match (args.month, args.days) {
        (Some(month), _) => Period::Month(month),
        (None, Some(days)) => Period::LastDays(days),
        (None, None) => return Err("give --month YYYY-MM or --days N".into()),
    };
    let channel = args.connection.channel().await?;
    // A large reseller's report is tens of MB (rows, CSV and JSON together):
    // gRPC's default 4 MiB limit refused it from about 2,000 installations
    // of 3 servers (some 470 bytes a line, the three forms together).
    let mut client = DashboardClient::with_interceptor(channel, args.connection.bearer()?)
        .max_decoding_message_size(REPORT_LIMIT);
    let report = client
        .get_uptime_report(proto::GetUptimeReportRequest {
            period: Some(period),
            slc: args.slc.unwrap_or_default(),
        })
        .await?
        .into_inner();
    if args.json {
        println!("{}", report.json);
    } else if args.csv {
        print!("{}", report.csv);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

/// `2026-11-01 00:00` (UTC).
fn minute(t: Option<&prost_types::Timestamp>) -> String {
    let Some(t) = t else {
        return "-".to_owned();
    };
    let text = super::channels::instant(Some(t));
    text.get(..16).unwrap_or(&text).replace('T', " ")
}

fn duration(d: Option<&prost_types::Duration>) -> Option<Duration> {
    d.map(|d| {
        Duration::from_secs(u64::try_from(d.seconds).unwrap_or(0))
            + Duration::from_nanos(u64::try_from(d.nanos).unwrap_or(0))
    })
}

/// A duration in its two largest units: `0s`, `45s`, `21m36s`, `2h5m`, `3d4h`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) if seconds == 0 => format!("{minutes}m"),
        (0, 0, _) => format!("{minutes}m{seconds}s"),
        (0, _, 0) => format!("{hours}h"),
        (0, _, _) => format!("{hours}h{minutes}m"),
        (_, 0, _) => format!("{days}d"),
        _ => format!("{days}d{hours}h"),
    }
}

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() > width {
        format!("{}…", text.chars().take(width - 1).collect::<String>())
    } else {
        text.to_owned()
    }
}

fn line(out: &mut String, name: &str, customer: &str, u: &proto::Uptime) {
    let availability = u
        .availability_percent
        .map_or("n/a".to_owned(), |p| format!("{p:.3}%"));
    let outages = format!("{}{}", u.outages, if u.ongoing { "+" } else { "" });
    let shown = |d: Option<&prost_types::Duration>| duration(d).map_or("-".to_owned(), short);
    out.push_str(&format!(
        "{:<22} {:<24} {:>12} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
        cut(name, 22),
        cut(customer, 24),
        availability,
        outages,
        shown(u.down.as_ref()),
        shown(u.mttr.as_ref()),
        shown(u.excluded_own_downtime.as_ref()),
        shown(u.excluded_maintenance.as_ref()),
    ));
}

/// The report as a table: each installation, then its recording servers
/// (indented).
pub(super) fn table(report: &proto::UptimeReport) -> String {
    let mut out = format!(
        "Uptime from {} to {} UTC\n",
        minute(report.period_start.as_ref()),
        minute(report.period_end.as_ref())
    );
    out.push_str(&format!(
        "{:<22} {:<24} {:>12} {:>8} {:>9} {:>9} {:>9} {:>9}\n",
        "SLC / SERVER", "CUSTOMER", "AVAILABILITY", "OUTAGES", "DOWN", "MTTR", "OWN DOWN", "MAINT."
    ));
    for i in &report.installations {
        let customer = match (i.customer.as_str(), i.site.as_str()) {
            ("", "") => "-".to_owned(),
            (c, "") => c.to_owned(),
            ("", s) => s.to_owned(),
            (c, s) => format!("{c} / {s}"),
        };
        let none = proto::Uptime::default();
        line(
            &mut out,
            &i.slc,
            &customer,
            i.uptime.as_ref().unwrap_or(&none),
        );
        for s in &i.servers {
            line(
                &mut out,
                &format!("  {}", s.recording_server_id),
                "",
                s.uptime.as_ref().unwrap_or(&none),
            );
        }
    }
    if report.installations.is_empty() {
        out.push_str("(no installations)\n");
    } else {
        out.push_str(
            "OUTAGES: + when one was still going on at the end. Own downtime and maintenance \
             are excluded from the availability.\n",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> Option<prost_types::Duration> {
        Some(prost_types::Duration {
            seconds: s,
            nanos: 0,
        })
    }

    #[test]
    fn durations_read_in_two_units() {
        let s = Duration::from_secs;
        assert_eq!(short(s(0)), "0s");
        assert_eq!(short(s(45)), "45s");
        assert_eq!(short(s(1296)), "21m36s");
        assert_eq!(short(s(7500)), "2h5m");
        assert_eq!(short(s(3 * 86_400 + 4 * 3600)), "3d4h");
    }

    #[test]
    fn the_table_lists_installations_then_their_servers() {
        let uptime = proto::Uptime {
            availability_percent: Some(99.95),
            observed: secs(2_592_000),
            down: secs(1296),
            outages: 2,
            outage_time: secs(1296),
            mttr: secs(648),
            ongoing: true,
            excluded_own_downtime: secs(0),
            excluded_maintenance: secs(3600),
            unmonitored: secs(0),
        };
        let report = proto::UptimeReport {
            period_start: Some(prost_types::Timestamp {
                seconds: 1_793_491_200,
                nanos: 0,
            }),
            period_end: Some(prost_types::Timestamp {
                seconds: 1_796_083_200,
                nanos: 0,
            }),
            installations: vec![proto::InstallationUptime {
                slc: "M01-C01-123-45".into(),
                customer: "Müller GmbH".into(),
                site: "Harbour".into(),
                uptime: Some(uptime),
                servers: vec![proto::ServerUptime {
                    recording_server_id: "rs-1".into(),
                    uptime: Some(proto::Uptime {
                        availability_percent: None,
                        mttr: None,
                        ongoing: false,
                        ..uptime
                    }),
                }],
            }],
            csv: String::new(),
            json: String::new(),
        };
        let text = table(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Uptime from 2026-11-01 00:00 to 2026-12-01 00:00 UTC"
        );
        assert!(lines[1].starts_with("SLC / SERVER"));
        assert!(
            lines[2].starts_with("M01-C01-123-45         Müller GmbH / Harbour"),
            "{}",
            lines[2]
        );
        assert!(
            lines[2].ends_with("99.950%       2+    21m36s    10m48s        0s        1h"),
            "{}",
            lines[2]
        );
        assert!(lines[3].starts_with("  rs-1 "), "{}", lines[3]);
        assert!(lines[3].contains("n/a"), "{}", lines[3]);
    }
}
