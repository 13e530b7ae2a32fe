//! A reseller's uptime report: every installation and its recording
//! servers over one period, as CSV and JSON. The formats are in the
//! [module documentation](super).

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::outage::{Change, Timeline};
use super::period::Period;
use super::uptime::{Exclusions, Uptime, exclusion_horizon};
use crate::availability::{Downtime, DowntimeWindow};
use crate::ids::{RecordingServerId, ResellerId, Slc};
use crate::labels::Labels;
use crate::notification::maintenance::MaintenanceWindow;
use crate::store::HistoryEvent;
use crate::time::Timestamp;

/// The first line of [`UptimeReport::to_csv`]: the columns, in order.
pub const CSV_HEADER: &str = "kind,slc,customer,site,server,period_start,period_end,\
availability_percent,observed_s,down_s,outages,outage_time_s,mttr_s,ongoing,\
excluded_own_downtime_s,excluded_maintenance_s,unmonitored_s";

/// The `version` of [`UptimeReport::to_json`]'s format.
pub const JSON_VERSION: u32 = 1;

/// A recording server to count, and when Carewatch first heard from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoredServer {
    /// The server.
    pub server: RecordingServerId,
    /// When Carewatch first heard from it (its `first_seen_at`).
    pub first_seen_at: Timestamp,
}

/// What a report needs of one installation, as storage reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationHistory {
    /// The installation.
    pub slc: Slc,
    /// What the reseller calls it (the report shows customer and site).
    pub labels: Labels,
    /// The servers to count, retired ones included (their history says
    /// when they were retired); a server listed twice counts once, from its
    /// earliest `first_seen_at`.
    pub servers: Vec<MonitoredServer>,
    /// Its history, in any order, reaching back before the period at least
    /// to each server's latest `BecameUnavailable` and `Decommissioned`
    /// before it (older entries do no harm); entries of servers not in
    /// `servers` are ignored.
    pub history: Vec<HistoryEvent>,
}

/// A recording server's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUptime {
    /// The server.
    pub server: RecordingServerId,
    /// Its figures.
    pub uptime: Uptime,
}

/// An installation's figures, and its servers'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallationUptime {
    /// The installation.
    pub slc: Slc,
    /// The customer's name from its labels ("" if not set).
    pub customer: String,
    /// The site's name from its labels ("" if not set).
    pub site: String,
    /// Its figures (outages: all its servers unavailable at once).
    pub uptime: Uptime,
    /// Its servers' figures, by server id.
    pub servers: Vec<ServerUptime>,
}

impl InstallationUptime {
    /// The figures of one installation and its servers over `period`, with
    /// Carewatch's own downtime `own` and the reseller's maintenance
    /// windows excluded (windows that do not cover the installation are
    /// ignored). `n log n` in the history's length.
    pub fn compute<'a>(
        installation: &InstallationHistory,
        period: Period,
        own: &Downtime,
        maintenance: impl IntoIterator<Item = &'a MaintenanceWindow>,
    ) -> Self {
        let mut servers: Vec<&MonitoredServer> = installation.servers.iter().collect();
        servers.sort_unstable_by(|a, b| {
            (&a.server, a.first_seen_at).cmp(&(&b.server, b.first_seen_at))
        });
        servers.dedup_by(|later, earlier| later.server == earlier.server);
        let mut changes: Vec<Vec<(Timestamp, Change)>> = vec![Vec::new(); servers.len()];
        for event in &installation.history {
            if let Some(change) = Change::of(&event.kind)
                && let Ok(i) = servers.binary_search_by(|s| s.server.cmp(&event.server))
            {
                changes[i].push((event.at, change));
            }
        }
        let timelines: Vec<Timeline> = servers
            .iter()
            .zip(&mut changes)
            .map(|(server, changes)| {
                Timeline::from_changes(changes, server.first_seen_at, period.end())
            })
            .collect();
        let site = Timeline::of_installation(&timelines, period.end());
        let horizon = exclusion_horizon(period, timelines.iter().flat_map(Timeline::outages));
        let exclusions = Exclusions::new(horizon, &installation.slc, own, maintenance);
        Self {
            slc: installation.slc.clone(),
            customer: installation.labels.customer().to_owned(),
            site: installation.labels.site().to_owned(),
            uptime: Uptime::compute(period, &site, &exclusions),
            servers: servers
                .iter()
                .zip(&timelines)
                .map(|(server, timeline)| ServerUptime {
                    server: server.server.clone(),
                    uptime: Uptime::compute(period, timeline, &exclusions),
                })
                .collect(),
        }
    }
}

/// A reseller's uptime report over one period (a calendar month for the
/// monthly report: [`Period::month`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UptimeReport {
    /// Whose.
    pub reseller: ResellerId,
    /// The period.
    pub period: Period,
    /// Its installations, by SLC.
    pub installations: Vec<InstallationUptime>,
}

impl UptimeReport {
    /// The report of `reseller`'s `installations` over `period`, with
    /// Carewatch's own downtime and `reseller`'s maintenance windows
    /// excluded (windows of other resellers are ignored). The windows are
    /// indexed once by installation, so each installation costs time in
    /// its own history and windows only.
    pub fn build(
        reseller: &ResellerId,
        period: Period,
        installations: &[InstallationHistory],
        own_downtime: &[DowntimeWindow],
        maintenance: &[MaintenanceWindow],
    ) -> Self {
        let own = Downtime::new(own_downtime.to_vec());
        let mut everywhere: Vec<&MaintenanceWindow> = Vec::new();
        let mut by_slc: HashMap<&Slc, Vec<&MaintenanceWindow>> = HashMap::new();
        for window in maintenance.iter().filter(|w| &w.reseller == reseller) {
            match &window.slc {
                None => everywhere.push(window),
                Some(slc) => by_slc.entry(slc).or_default().push(window),
            }
        }
        let mut order: Vec<&InstallationHistory> = installations.iter().collect();
        order.sort_by(|a, b| a.slc.cmp(&b.slc));
        let installations = order
            .into_iter()
            .map(|installation| {
                let own_windows = by_slc.get(&installation.slc).into_iter().flatten();
                InstallationUptime::compute(
                    installation,
                    period,
                    &own,
                    everywhere.iter().chain(own_windows).copied(),
                )
            })
            .collect();
        Self {
            reseller: reseller.clone(),
            period,
            installations,
        }
    }

    /// The report as RFC 4180 CSV: [`CSV_HEADER`], then each installation's
    /// line followed by its servers' lines; CRLF line ends.
    pub fn to_csv(&self) -> String {
        let mut csv =
            String::with_capacity((CSV_HEADER.len() + 2) * (1 + self.installations.len() * 4));
        csv.push_str(CSV_HEADER);
        csv.push_str("\r\n");
        for installation in &self.installations {
            self.csv_line(&mut csv, installation, None, &installation.uptime);
            for server in &installation.servers {
                self.csv_line(&mut csv, installation, Some(&server.server), &server.uptime);
            }
        }
        csv
    }

    fn csv_line(
        &self,
        csv: &mut String,
        installation: &InstallationUptime,
        server: Option<&RecordingServerId>,
        uptime: &Uptime,
    ) {
        let fields = [
            if server.is_some() {
                "server"
            } else {
                "installation"
            }
            .to_owned(),
            installation.slc.to_string(),
            formula_safe(&installation.customer),
            formula_safe(&installation.site),
            server_cell(server),
            self.period.start().to_string(),
            self.period.end().to_string(),
            uptime
                .availability()
                .map(|a| a.to_fixed(3))
                .unwrap_or_default(),
            seconds(uptime.observed),
            seconds(uptime.down),
            uptime.outages.to_string(),
            seconds(uptime.outage_time),
            uptime.mttr.map(seconds).unwrap_or_default(),
            uptime.ongoing.to_string(),
            seconds(uptime.excluded_own_downtime),
            seconds(uptime.excluded_maintenance),
            seconds(uptime.unmonitored),
        ];
        for (i, field) in fields.iter().enumerate() {
            if i > 0 {
                csv.push(',');
            }
            push_csv_field(csv, field);
        }
        csv.push_str("\r\n");
    }

    /// The report as a JSON value (see the module documentation).
    pub fn to_json_value(&self) -> Value {
        json!({
            "version": JSON_VERSION,
            "reseller": self.reseller.as_str(),
            "period": {
                "start": self.period.start().to_string(),
                "end": self.period.end().to_string(),
            },
            "installations": self.installations.iter().map(|installation| json!({
                "slc": installation.slc.as_str(),
                "customer": installation.customer,
                "site": installation.site,
                "uptime": uptime_json(&installation.uptime),
                "servers": installation.servers.iter().map(|server| json!({
                    "server": server.server.as_str(),
                    "uptime": uptime_json(&server.uptime),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The report as JSON text (see the module documentation).
    pub fn to_json(&self) -> String {
        self.to_json_value().to_string()
    }
}

fn uptime_json(uptime: &Uptime) -> Value {
    json!({
        "availability_percent": uptime
            .availability()
            .map(|a| a.scaled_down(3) as f64 / 1000.0),
        "observed_s": seconds_number(uptime.observed),
        "down_s": seconds_number(uptime.down),
        "outages": uptime.outages,
        "outage_time_s": seconds_number(uptime.outage_time),
        "mttr_s": uptime.mttr.map(seconds_number),
        "ongoing": uptime.ongoing,
        "excluded_own_downtime_s": seconds_number(uptime.excluded_own_downtime),
        "excluded_maintenance_s": seconds_number(uptime.excluded_maintenance),
        "unmonitored_s": seconds_number(uptime.unmonitored),
    })
}

/// Seconds, exact: `1800`, `0.25`, `1.001`.
fn seconds(d: Duration) -> String {
    let ms = d.as_millis();
    let (whole, fraction) = (ms / 1000, ms % 1000);
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{fraction:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

/// Seconds as a JSON number (exact to the millisecond).
fn seconds_number(d: Duration) -> f64 {
    d.as_millis() as f64 / 1000.0
}

/// Text a person typed (a customer or site name), with a `'` in front
/// when it starts like a formula (`=`, `+`, `-`, `@`, tab, CR): a
/// spreadsheet opening the report would otherwise run a name such as
/// `=HYPERLINK(…)` (CSV injection, as OWASP describes it).
fn formula_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// A recording server's id as a CSV cell: the device names itself, and an
/// id may begin with `-` (`-A1` reads as a formula).
fn server_cell(server: Option<&RecordingServerId>) -> String {
    server.map_or_else(String::new, |s| formula_safe(s.as_str()))
}

/// Appends `field`, quoted (quotes doubled) if it holds a comma, a quote,
/// CR or LF (RFC 4180).
fn push_csv_field(csv: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        csv.push('"');
        csv.push_str(&field.replace('"', "\"\""));
        csv.push('"');
    } else {
        csv.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(seconds(Duration::from_secs(1800)), "1800");
        assert_eq!(seconds(Duration::from_millis(250)), "0.25");
        assert_eq!(seconds(Duration::from_millis(1001)), "1.001");
        assert_eq!(seconds(Duration::from_millis(10_100)), "10.1");
        assert_eq!(seconds(Duration::ZERO), "0");
        assert_eq!(seconds_number(Duration::from_millis(1500)), 1.5);
    }

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let mut csv = String::new();
        for field in ["plain", "Müller, Söhne", "the \"best\"", "two\nlines", ""] {
            push_csv_field(&mut csv, field);
            csv.push('|');
        }
        assert_eq!(
            csv,
            "plain|\"Müller, Söhne\"|\"the \"\"best\"\"\"|\"two\nlines\"||"
        );
    }

    /// Found by review: the server column was written raw.
    #[test]
    fn a_server_id_that_starts_like_a_formula_is_not_one() {
        let id = |text: &str| RecordingServerId::new(text).expect("valid server id");
        assert_eq!(server_cell(Some(&id("-A1"))), "'-A1");
        assert_eq!(server_cell(Some(&id("rs-1"))), "rs-1");
        assert_eq!(server_cell(None), "");
    }

    #[test]
    fn typed_text_that_starts_like_a_formula_is_not_one() {
        let mut csv = String::new();
        for text in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1",
            "-2",
            "@SUM(A1)",
            "\tcmd",
            "\rx",
            "Müller = Söhne",
            "",
        ] {
            push_csv_field(&mut csv, &formula_safe(text));
            csv.push('|');
        }
        assert_eq!(
            csv,
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\"|'+1|'-2|'@SUM(A1)|'\tcmd|\"'\rx\"|Müller = Söhne||"
        );
    }
}
