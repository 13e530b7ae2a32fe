//! A fleet of simulated recording servers: a real gRPC + TLS client that
//! seals every message as a recording server would. Used by `carewatch
//! simulate`, `carewatch demo`, the end-to-end tests and the load benchmarks.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carewatch_core::condition::{ReportedCondition, StatusSnapshot};
use carewatch_core::ids::{RecordingServerId, ResellerId, Slc};
use carewatch_core::seal::{self, Binding, InstallationKey, MessageKind};
use futures::StreamExt;
use tonic::transport::Channel;

use carewatch_grpc::client::Bearer;
use carewatch_grpc::proto::{self, admin_client::AdminClient, ingest_client::IngestClient};

/// The admin client the simulator provisions with.
pub type Admin = AdminClient<tonic::service::interceptor::InterceptedService<Channel, Bearer>>;

/// One simulated recording server.
#[derive(Debug)]
pub struct SimServer {
    /// Its installation.
    pub slc: Slc,
    /// Its id.
    pub id: RecordingServerId,
    key: InstallationKey,
    sequence: u64,
    /// A silent server sends nothing (crashed, or its site lost its link).
    pub silent: bool,
    conditions: Vec<ReportedCondition>,
    report_due: bool,
}

impl SimServer {
    /// A server that will start with a status report.
    pub fn new(slc: Slc, id: RecordingServerId, key: InstallationKey) -> Self {
        // Sequence numbers start from the clock so a restarted simulator never reuses one.
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Self {
            slc,
            id,
            key,
            sequence: start,
            silent: false,
            conditions: Vec::new(),
            report_due: true,
        }
    }

    /// The sequence number of the last message made.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Records that the status report was acknowledged: heartbeats from now on.
    pub fn report_acknowledged(&mut self) {
        self.report_due = false;
    }

    /// Replaces its active conditions; the next message is a status report.
    pub fn set_conditions(&mut self, conditions: Vec<ReportedCondition>) {
        self.conditions = conditions;
        self.report_due = true;
    }

    /// The next message to send, sealed: a status report when its conditions
    /// changed (or it has not reported yet), otherwise a heartbeat.
    pub fn next_message(&mut self) -> (MessageKind, proto::SealedMessage) {
        self.sequence += 1;
        let kind = if self.report_due {
            MessageKind::StatusReport
        } else {
            MessageKind::Heartbeat
        };
        let binding = Binding {
            slc: &self.slc,
            server: &self.id,
            kind,
            sequence: self.sequence,
        };
        let plaintext = match kind {
            MessageKind::Heartbeat => Vec::new(),
            MessageKind::StatusReport => {
                let snapshot = StatusSnapshot::new(self.conditions.clone()).unwrap_or_default();
                seal::payload::encode_status(&snapshot)
            }
        };
        let message = proto::SealedMessage {
            slc: self.slc.to_string(),
            recording_server_id: self.id.to_string(),
            sequence: self.sequence,
            sealed: seal::seal(&self.key, &binding, &plaintext),
        };
        (kind, message)
    }
}

/// What one round of the fleet did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Messages acknowledged.
    pub accepted: usize,
    /// Messages refused or failed.
    pub refused: usize,
    /// The first refusal's text, if any.
    pub first_refusal: Option<tonic::Code>,
}

/// Many simulated servers.
#[derive(Debug, Default)]
pub struct Fleet {
    /// The servers.
    pub servers: Vec<SimServer>,
}

impl Fleet {
    /// Registers an installation for `reseller` through the Admin service
    /// (consent, a year of Care Plus, a key) and adds `servers` servers for it.
    pub async fn provision(
        &mut self,
        admin: &mut Admin,
        reseller: &ResellerId,
        slc: &Slc,
        product: (&str, &str),
        servers: usize,
    ) -> Result<(), tonic::Status> {
        let site = provision_site(admin, reseller, slc, product, servers).await?;
        self.servers.extend(site);
        Ok(())
    }

    /// The servers of one installation.
    pub fn site_mut<'a>(
        &'a mut self,
        slc: &'a Slc,
    ) -> impl Iterator<Item = &'a mut SimServer> + 'a {
        self.servers.iter_mut().filter(move |s| &s.slc == slc)
    }

    /// One server.
    pub fn server_mut(&mut self, slc: &Slc, id: &str) -> Option<&mut SimServer> {
        self.servers
            .iter_mut()
            .find(|s| &s.slc == slc && s.id.as_str() == id)
    }

    /// Every non-silent server sends one message (a status report when its
    /// conditions changed, otherwise a heartbeat), `concurrency` at a time.
    pub async fn round(
        &mut self,
        client: &IngestClient<Channel>,
        concurrency: usize,
    ) -> RoundReport {
        let messages: Vec<(usize, MessageKind, proto::SealedMessage)> = self
            .servers
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| !s.silent)
            .map(|(i, s)| {
                let (kind, message) = s.next_message();
                (i, kind, message)
            })
            .collect();
        let results: Vec<(usize, MessageKind, Result<(), tonic::Status>)> =
            futures::stream::iter(messages)
                .map(|(i, kind, message)| {
                    let mut client = client.clone();
                    async move {
                        let result = match kind {
                            MessageKind::Heartbeat => client.heartbeat(message).await.map(|_| ()),
                            MessageKind::StatusReport => {
                                client.status_report(message).await.map(|_| ())
                            }
                        };
                        (i, kind, result)
                    }
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
        let mut report = RoundReport::default();
        for (i, kind, result) in results {
            match result {
                Ok(()) => {
                    report.accepted += 1;
                    if kind == MessageKind::StatusReport {
                        self.servers[i].report_acknowledged();
                    }
                }
                Err(status) => {
                    report.refused += 1;
                    report.first_refusal.get_or_insert(status.code());
                }
            }
        }
        report
    }
}

/// Registers an installation for `reseller` through the Admin service
/// (consent, a year of Care Plus, a key) and returns `servers` simulated
/// servers for it, named `rs-1` … `rs-<servers>`.
pub async fn provision_site(
    admin: &mut Admin,
    reseller: &ResellerId,
    slc: &Slc,
    product: (&str, &str),
    servers: usize,
) -> Result<Vec<SimServer>, tonic::Status> {
    admin
        .register_installation(proto::RegisterInstallationRequest {
            slc: slc.to_string(),
            reseller_id: reseller.to_string(),
            product: product.0.into(),
            product_version: product.1.into(),
        })
        .await?;
    admin
        .set_consent(proto::SetConsentRequest {
            slc: slc.to_string(),
            accepted: true,
        })
        .await?;
    let year = SystemTime::now() + Duration::from_secs(365 * 24 * 3600);
    let expires_at = Some(prost_types::Timestamp::from(year));
    admin
        .set_subscription(proto::SetSubscriptionRequest {
            slc: slc.to_string(),
            expires_at,
        })
        .await?;
    let key = admin
        .issue_installation_key(proto::IssueInstallationKeyRequest {
            slc: slc.to_string(),
        })
        .await?;
    let key = InstallationKey::from_text(&key.into_inner().key)
        .map_err(|e| tonic::Status::internal(format!("server sent an unreadable key: {e}")))?;
    (1..=servers)
        .map(|n| {
            let id = RecordingServerId::new(&format!("rs-{n}"))
                .map_err(|e| tonic::Status::internal(e.to_string()))?;
            Ok(SimServer::new(slc.clone(), id, key.clone()))
        })
        .collect()
}
