//! What one run recorded: the receiver's notifications, the change feed's
//! detections, ingest's acknowledgements.

use super::*;

/// One notification as the receiver got it.
#[derive(Debug, Clone)]
pub(crate) struct Note {
    pub(crate) key: String,
    pub(crate) header_matches: bool,
    pub(crate) kind: String,
    pub(crate) slc: String,
    pub(crate) health: String,
    /// Receiver arrival, Unix ms.
    pub(crate) arrived: i64,
    /// `at`: when the notifier decided it.
    pub(crate) decided: Option<i64>,
    /// `installation.since`: when the problem began (the detection).
    pub(crate) since: Option<i64>,
    /// `servers_down[0].since`: the server's missed-heartbeat deadline.
    pub(crate) server_since: Option<i64>,
    /// `resolved.recovered_at`.
    pub(crate) recovered_at: Option<i64>,
}

impl Note {
    pub(crate) fn of(received: &Received) -> Self {
        let json = received.json();
        let text = |value: &serde_json::Value| value.as_str().map(str::to_owned);
        let time = |value: &serde_json::Value| value.as_str().and_then(parse_millis);
        let key = text(&json["id"]).unwrap_or_default();
        Self {
            header_matches: received.header("idempotency-key") == Some(key.as_str()),
            key,
            kind: text(&json["kind"]).unwrap_or_default(),
            slc: text(&json["installation"]["slc"]).unwrap_or_default(),
            health: text(&json["installation"]["health"]).unwrap_or_default(),
            arrived: unix_millis(received.at),
            decided: time(&json["at"]),
            since: time(&json["installation"]["since"]),
            server_since: time(&json["servers_down"][0]["since"]),
            recovered_at: time(&json["resolved"]["recovered_at"]),
        }
    }
}

/// RFC 3339 UTC with milliseconds (`2026-12-01T14:00:03.512Z`), in Unix ms.
pub(crate) fn parse_millis(text: &str) -> Option<i64> {
    let whole = Timestamp::parse_utc(text)?.as_millis();
    let fraction = text
        .split_once('.')
        .map_or("", |(_, f)| f.trim_end_matches('Z'));
    let digits: String = fraction.chars().take(3).collect();
    let ms = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<3}").parse::<i64>().ok()?
    };
    Some(whole + ms)
}

/// What the change feed says about one outage installation.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen {
    /// When it was recorded Offline (after T).
    pub(crate) offline: Option<i64>,
    /// When its next health event after that was recorded (the recovery).
    pub(crate) recovered: Option<i64>,
}

/// One run's record.
pub(crate) struct Run {
    /// The pair's B run (A otherwise).
    pub(crate) b: bool,
    /// The outage fleet fell silent at T (B; A with `--a-outage`; both
    /// runs of a control).
    pub(crate) outage: bool,
    /// A notification channel was set up (B only).
    pub(crate) notify: bool,
    /// T (ms since the origin) and as Unix ms.
    pub(crate) t_ms: u32,
    pub(crate) t_unix: i64,
    /// The last ms the fleets were measured in A/B terms (before recovery).
    pub(crate) measured_until_ms: u32,
    pub(crate) ingest: Acks,
    pub(crate) paced: Acks,
    pub(crate) samples: Vec<CpuSample>,
    /// Notifications that arrived after T.
    pub(crate) notes: Vec<Note>,
    /// Notifications that arrived before T (during the warm-up).
    pub(crate) early: usize,
    pub(crate) seen: HashMap<String, Seen>,
    /// Outbox: entries, delivered, retried (attempts > 1), given up, pending.
    pub(crate) outbox: [usize; 5],
    /// Health events other than Pending/Healthy from one interval before T
    /// on, of the ingest fleet and (in A) of the outage fleet, by fleet and
    /// health.
    pub(crate) stray_health: BTreeMap<String, usize>,
    /// Storage stalls the server logged (Unix ms).
    pub(crate) stalls: Vec<i64>,
    pub(crate) load: String,
    pub(crate) problems: Vec<String>,
}

/// Ingest over a window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Window {
    pub(crate) heartbeats_per_s: f64,
    pub(crate) p99_ms: f64,
    pub(crate) server_cpu_us: Option<f64>,
    /// The part of `server_cpu_us` taken by threads at the server's own
    /// priority (all but the notification threads).
    pub(crate) foreground_cpu_us: Option<f64>,
    /// CPU time of the server's lower-priority (notification) threads over
    /// the window (between the CPU samples nearest its ends), in ms.
    pub(crate) background_cpu_ms: Option<f64>,
    /// CPU time of the benchmark's receiver thread over the window, in ms
    /// (part of the generator's).
    pub(crate) receiver_cpu_ms: Option<f64>,
    pub(crate) generator_cpu_us: Option<f64>,
    pub(crate) seconds: f64,
}

impl Run {
    /// Ingest between `from_ms` and `to_ms` (since the origin).
    pub(crate) fn window(&self, from_ms: u32, to_ms: u32) -> Window {
        let to_ms = to_ms.min(self.measured_until_ms).max(from_ms + 1);
        let in_window = |acks: &[(u32, u32)], a: u32, b: u32| -> Vec<u32> {
            let start = acks.partition_point(|&(at, _)| at < a);
            let end = acks.partition_point(|&(at, _)| at < b);
            acks[start..end].iter().map(|&(_, l)| l).collect()
        };
        let mut latencies = in_window(&self.ingest.acks, from_ms, to_ms);
        latencies.sort_unstable();
        let seconds = f64::from(to_ms - from_ms) / 1000.0;
        let cpu = nearest(&self.samples, from_ms).zip(nearest(&self.samples, to_ms));
        let (mut server_cpu_us, mut foreground_cpu_us) = (None, None);
        let (mut background_cpu_ms, mut generator_cpu_us) = (None, None);
        let mut receiver_cpu_ms = None;
        if let Some((a, b)) = cpu.filter(|(a, b)| b.at_ms > a.at_ms) {
            let heartbeats = in_window(&self.ingest.acks, a.at_ms, b.at_ms).len()
                + in_window(&self.paced.acks, a.at_ms, b.at_ms).len();
            let used = |x: Option<Duration>, y: Option<Duration>| y?.checked_sub(x?);
            let per = |d: Option<Duration>| Some(d?.as_secs_f64() * 1e6 / heartbeats.max(1) as f64);
            let server = used(a.server, b.server);
            let background = used(a.server_background, b.server_background);
            server_cpu_us = per(server);
            foreground_cpu_us = per(server.zip(background).and_then(|(s, b)| s.checked_sub(b)));
            background_cpu_ms = background.map(|d| d.as_secs_f64() * 1e3);
            receiver_cpu_ms = used(a.receiver, b.receiver).map(|d| d.as_secs_f64() * 1e3);
            generator_cpu_us = per(used(a.this, b.this));
        }
        Window {
            heartbeats_per_s: latencies.len() as f64 / seconds,
            p99_ms: percentile(&latencies, 99.0),
            server_cpu_us,
            foreground_cpu_us,
            background_cpu_ms,
            receiver_cpu_ms,
            generator_cpu_us,
            seconds,
        }
    }

    /// Offsets from T (ms) of B's outage window: first detection to last
    /// Offline notification (to the last detection in a control run, which
    /// has no channel).
    pub(crate) fn outage_offsets(&self) -> Option<(i64, i64)> {
        let first = self.seen.values().filter_map(|s| s.offline).min()?;
        let last = if self.notify {
            self.notes
                .iter()
                .filter(|n| n.kind == "problem")
                .map(|n| n.arrived)
                .max()?
        } else {
            self.seen.values().filter_map(|s| s.offline).max()?
        };
        Some((first - self.t_unix, last - self.t_unix))
    }

    pub(crate) fn at_offset(&self, offset: i64) -> u32 {
        u32::try_from((i64::from(self.t_ms) + offset).max(0)).unwrap_or(u32::MAX)
    }
}
