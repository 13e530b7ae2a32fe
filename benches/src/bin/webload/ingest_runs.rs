//! Ingest runs beside the live pages: the sites holding them open, the toggled installations.

use super::*;

/// One ingest run's figures.
#[derive(Debug, Clone)]
pub(crate) struct IngestRun {
    pub(crate) heartbeats_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) errors: u64,
    pub(crate) server_cpu_us: Option<f64>,
    pub(crate) generator_cpu_us: Option<f64>,
    pub(crate) rss_after: Option<Memory>,
    pub(crate) changes: u64,
    /// Events each open page received during the measured seconds: min, max.
    pub(crate) page_events: Option<(u64, u64)>,
    /// Seconds since the previous ingest run ended.
    pub(crate) gap_s: f64,
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn ingest_run(
    workers: &mut Workers,
    channels: &[Channel],
    mode: ingest::Mode,
    args: &Args,
    server: &ServerProcess,
    site: &Site,
    pages: &[LivePage],
    last_ingest: Instant,
) -> Result<IngestRun, BoxError> {
    let gap = last_ingest.elapsed();
    if gap > INGEST_INTERVAL.saturating_sub(Duration::from_secs(5)) {
        eprintln!(
            "warning: {:.0} s since the last ingest run: the ingest servers may have turned Late",
            gap.as_secs_f64()
        );
    }
    workers
        .run(channels, mode, Duration::from_secs(args.warmup_seconds))
        .await;
    let events_before: Vec<u64> = pages.iter().map(LivePage::events).collect();
    let changes_before = site.changes();
    let cpu_before = (server.cpu_time(), cpu_time("self"));
    let (mut tally, elapsed) = workers
        .run(channels, mode, Duration::from_secs(args.seconds))
        .await;
    let cpu_after = (server.cpu_time(), cpu_time("self"));
    let changes = site.changes() - changes_before;
    let page_events = (!pages.is_empty()).then(|| {
        let deltas = pages
            .iter()
            .zip(&events_before)
            .map(|(p, before)| p.events() - before);
        let (mut min, mut max) = (u64::MAX, 0);
        for d in deltas {
            min = min.min(d);
            max = max.max(d);
        }
        (min, max)
    });
    tally.latencies_us.sort_unstable();
    let accepted = tally.latencies_us.len();
    let per_heartbeat = |before: Option<Duration>, after: Option<Duration>| {
        Some((after? - before?).as_secs_f64() * 1e6 / accepted.max(1) as f64)
    };
    Ok(IngestRun {
        heartbeats_per_s: accepted as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&tally.latencies_us, 50.0),
        p99_ms: percentile(&tally.latencies_us, 99.0),
        errors: tally.error_count(),
        server_cpu_us: per_heartbeat(cpu_before.0, cpu_after.0),
        generator_cpu_us: per_heartbeat(cpu_before.1, cpu_after.1),
        rss_after: server.memory(),
        changes,
        page_events,
        gap_s: gap.as_secs_f64(),
    })
}

pub(crate) fn print_run(number: usize, label: &str, run: &IngestRun) {
    println!(
        "pair {number} {label}: {:.0} heartbeats/s, p50 {:.2} ms, p99 {:.2} ms, errors {}, \
         CPU per heartbeat: server {} µs, generator {} µs; server RSS {} MiB; {} changes{}",
        run.heartbeats_per_s,
        run.p50_ms,
        run.p99_ms,
        run.errors,
        opt1(run.server_cpu_us),
        opt1(run.generator_cpu_us),
        mib(run.rss_after),
        run.changes,
        match run.page_events {
            Some((min, max)) => format!(", events per page {min}–{max}"),
            None => String::new(),
        }
    );
}

/// The server's CPU time over `seconds` with no ingest running, in
/// milliseconds per second (1,000 is one core).
pub(crate) async fn idle_cpu(server: &ServerProcess, seconds: u64) -> Option<f64> {
    let began = Instant::now();
    let before = server.cpu_time()?;
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let spent = server.cpu_time()? - before;
    Some(spent.as_secs_f64() * 1000.0 / began.elapsed().as_secs_f64())
}

/// Sends the probe's status report (its full drive on, or off) and waits
/// until every page got the probe installation's row event; the latencies
/// (µs, from just before sending) and how many pages got none in time.
pub(crate) async fn probe_pages(
    site: &Site,
    stats: &LiveStats,
    pages: &[LivePage],
    slc: &str,
) -> Result<(Vec<u32>, usize), BoxError> {
    stats.probe(slc, pages);
    let sent_at = stats.now_micros();
    site.probe().await?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while Instant::now() < deadline && pages.iter().any(|p| p.probe_seen_at().is_none()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let latencies: Vec<u32> = pages
        .iter()
        .filter_map(LivePage::probe_seen_at)
        .map(|t| u32::try_from(t.saturating_sub(sent_at)).unwrap_or(u32::MAX))
        .collect();
    let missing = pages.len() - latencies.len();
    Ok((latencies, missing))
}

/// A handful of installations whose servers change their conditions: a
/// background toggle of a full drive on some, and the probe on one.
pub(crate) struct Site {
    pub(crate) commands: mpsc::Sender<oneshot::Sender<Result<(), String>>>,
    pub(crate) changes: Arc<AtomicU64>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Site {
    pub(crate) fn start(
        channel: Channel,
        toggled: Vec<SimServer>,
        probe: SimServer,
        changes_per_second: f64,
    ) -> Self {
        let (commands, mut received) = mpsc::channel::<oneshot::Sender<Result<(), String>>>(1);
        let changes = Arc::new(AtomicU64::new(0));
        let counted = changes.clone();
        let task = tokio::spawn(async move {
            let mut client = IngestClient::new(channel);
            let mut toggled: Vec<(SimServer, bool)> =
                toggled.into_iter().map(|s| (s, false)).collect();
            let mut probe = (probe, false);
            let mut next = 0usize;
            let period = if changes_per_second > 0.0 {
                Duration::from_secs_f64(1.0 / changes_per_second)
            } else {
                Duration::from_secs(3600)
            };
            let mut changing = tokio::time::interval(period);
            changing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            changing.tick().await;
            let mut keepalive = tokio::time::interval(KEEPALIVE);
            keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    command = received.recv() => {
                        let Some(reply) = command else { return };
                        let _ = reply.send(toggle(&mut client, &mut probe).await);
                    }
                    _ = changing.tick(), if changes_per_second > 0.0 && !toggled.is_empty() => {
                        let n = next % toggled.len();
                        next += 1;
                        if toggle(&mut client, &mut toggled[n]).await.is_ok() {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ = keepalive.tick() => {
                        for (server, _) in toggled.iter_mut().chain(std::iter::once(&mut probe)) {
                            let _ = send(&mut client, server).await;
                        }
                    }
                }
            }
        });
        Self {
            commands,
            changes,
            task,
        }
    }

    /// Toggles the probe installation's full drive; returns once acknowledged.
    pub(crate) async fn probe(&self) -> Result<(), BoxError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(reply)
            .await
            .map_err(|_| "the site stopped")?;
        answer.await?.map_err(Into::into)
    }

    /// Background health changes acknowledged so far.
    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

/// A full drive on the server if it had none, or its end.
pub(crate) async fn toggle(
    client: &mut IngestClient<Channel>,
    (server, full): &mut (SimServer, bool),
) -> Result<(), String> {
    *full = !*full;
    let conditions = if *full {
        vec![
            ReportedCondition::new(
                ConditionCode::StorageFull,
                "D:\\Recordings",
                "the drive is full: recording stopped",
            )
            .map_err(|e| e.to_string())?,
        ]
    } else {
        Vec::new()
    };
    server.set_conditions(conditions);
    send(client, server).await
}

/// The server's next message (a status report if its conditions changed).
pub(crate) async fn send(
    client: &mut IngestClient<Channel>,
    server: &mut SimServer,
) -> Result<(), String> {
    let (kind, message) = server.next_message();
    let result = match kind {
        MessageKind::StatusReport => client.status_report(message).await.map(drop),
        MessageKind::Heartbeat => client.heartbeat(message).await.map(drop),
    };
    match result {
        Ok(()) => {
            server.report_acknowledged();
            Ok(())
        }
        Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
    }
}
