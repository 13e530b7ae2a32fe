//! The fleet: simulated recording servers that keep sending, retrying
//! what fails as the protocol says.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use carewatch_cli::simulate::SimServer;
use carewatch_core::condition::ReportedCondition;
use carewatch_core::seal::MessageKind;
use carewatch_grpc::proto::ingest_client::IngestClient;
use carewatch_grpc::status::ERROR_KIND_KEY;
use carewatch_tests::process::clock;
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;

use crate::scenario::{Role, SiteKind};
use crate::{CALL_DEADLINE, INTERVAL, RETRY_EVERY, lock};

/// One simulated recording server, shared with its task.
#[derive(Debug)]
pub(crate) struct Sim {
    pub(crate) slc: String,
    pub(crate) id: String,
    pub(crate) kind: SiteKind,
    pub(crate) role: Role,
    pub(crate) silenced: AtomicBool,
    pub(crate) new_conditions: Mutex<Option<Vec<ReportedCondition>>>,
    pub(crate) log: Mutex<SimLog>,
}

#[derive(Debug, Default)]
pub(crate) struct SimLog {
    pub(crate) acks: u64,
    pub(crate) silenced_at: Option<SystemTime>,
    pub(crate) conditions_sent: Option<SystemTime>,
    pub(crate) conditions_acked: Option<SystemTime>,
    /// Refusals that no outage explains.
    pub(crate) unexpected: Vec<String>,
    /// Failed attempts (retried), by code and the start of the message.
    pub(crate) retried: BTreeMap<String, u32>,
}

impl Sim {
    pub(crate) fn name(&self) -> String {
        format!("{}/{}", self.slc, self.id)
    }

    pub(crate) fn silence(&self) {
        if !self.silenced.swap(true, Ordering::AcqRel) {
            lock(&self.log).silenced_at = Some(SystemTime::now());
        }
    }

    fn silent(&self) -> bool {
        self.silenced.load(Ordering::Acquire)
    }
}

/// Failures a message may meet while Carewatch or its database is down:
/// UNAVAILABLE; a deadline (tonic's server answers an expired
/// `grpc-timeout` with CANCELLED "Timeout expired"); and what the tonic
/// client makes of a call that a clean stop's GOAWAY caught before it was
/// sent (CANCELLED, or INTERNAL "h2 protocol error" without a
/// `carewatch-error` kind): connection failures before the reply, which
/// PROTOCOL.md says to retry.
fn transient(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => true,
        Code::Internal => {
            status.metadata().get(ERROR_KIND_KEY).is_none()
                && status.message().starts_with("h2 protocol error")
        }
        _ => false,
    }
}

/// A recording server: a message every interval after the start of its
/// last attempt; a failed one is retried every 100 ms (2 s deadline each)
/// with the same sequence number, as the protocol's retries are.
pub(crate) async fn run_sim(
    sim: Arc<Sim>,
    mut server: SimServer,
    mut client: IngestClient<Channel>,
    mut stop: watch::Receiver<bool>,
) {
    let mut next = tokio::time::Instant::now();
    let mut sent: u64 = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            _ = stop.changed() => return,
        }
        if sim.silent() || *stop.borrow() {
            return;
        }
        let conditions = lock(&sim.new_conditions).take();
        let reporting_conditions = conditions.is_some();
        if let Some(conditions) = conditions {
            server.set_conditions(conditions);
            lock(&sim.log).conditions_sent = Some(SystemTime::now());
        } else if sim.kind == SiteKind::Reporting && sent % 3 == 2 {
            server.set_conditions(Vec::new());
        }
        sent += 1;
        let (kind, message) = server.next_message();
        loop {
            let attempt = tokio::time::Instant::now();
            next = attempt + INTERVAL;
            let mut request = tonic::Request::new(message.clone());
            request.set_timeout(CALL_DEADLINE);
            let call = async {
                match kind {
                    MessageKind::Heartbeat => client.heartbeat(request).await,
                    MessageKind::StatusReport => client.status_report(request).await,
                }
            };
            match tokio::time::timeout(CALL_DEADLINE, call).await {
                Ok(Ok(_)) => {
                    let mut log = lock(&sim.log);
                    log.acks += 1;
                    if kind == MessageKind::StatusReport {
                        server.report_acknowledged();
                        if reporting_conditions {
                            log.conditions_acked = Some(SystemTime::now());
                        }
                    }
                    break;
                }
                Ok(Err(status)) if !transient(&status) => {
                    lock(&sim.log).unexpected.push(format!(
                        "{} {:?}: {}",
                        clock(SystemTime::now()),
                        status.code(),
                        status.message()
                    ));
                }
                Ok(Err(status)) => {
                    let message: String = status.message().chars().take(40).collect();
                    let key = format!("{:?}: {message}", status.code());
                    *lock(&sim.log).retried.entry(key).or_default() += 1;
                }
                Err(_) => {
                    let key = "no answer within the deadline".to_owned();
                    *lock(&sim.log).retried.entry(key).or_default() += 1;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY_EVERY) => {}
                _ = stop.changed() => return,
            }
            if sim.silent() || *stop.borrow() {
                return;
            }
        }
    }
}
