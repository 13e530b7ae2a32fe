//! Ingest: judging and applying messages from recording servers.

use std::time::Duration;

use super::Carewatch;
use super::admission_cache::RememberedAdmission;
use super::in_flight::Stopwatch;
use crate::auth::{self, MessageDigest, SequenceCursor, SequenceVerdict};
use crate::availability::{self, Availability};
use crate::error::{Error, Result};
use crate::ids::{RecordingServerId, Slc};
use crate::seal::payload::decode_message;
use crate::seal::{Binding, Envelope, KeyId, MessageKind, SealError};
use crate::store::{AdmissionQuery, SignOfLife, StatusWrite, WriteOutcome};
use crate::time::Timestamp;

/// A message as it arrives from a recording server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingMessage {
    /// The installation it claims to come from.
    pub slc: Slc,
    /// The recording server.
    pub server: RecordingServerId,
    /// Heartbeat or status report.
    pub kind: MessageKind,
    /// Strictly increasing per recording server (a retry repeats it).
    pub sequence: u64,
    /// The sealed envelope.
    pub sealed: Vec<u8>,
}

/// The acknowledgement sent back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestAck {
    /// When Carewatch received it (its clock).
    pub received_at: Timestamp,
    /// The heartbeat interval the recording server must keep.
    pub heartbeat_interval: Duration,
    /// Whether this was a retry of a message already applied.
    pub duplicate: bool,
}

impl Carewatch {
    /// Judges and applies one message. A refused message changes nothing;
    /// an acknowledged status report is committed before this returns; a
    /// retry of the latest message is acknowledged again and applied once.
    pub async fn ingest(&self, message: IncomingMessage) -> Result<IngestAck> {
        // Registered before the receipt time is read: a sweep judging at an
        // instant waits for every message received before it.
        let in_flight = InFlightMessage::enter(self);
        let received_at = in_flight.received_at;
        let result = if self.is_stopping() {
            Err(Error::ShuttingDown)
        } else {
            let result = self.ingest_inner(&message, received_at).await;
            self.watch_storage(received_at, result)
        };
        drop(in_flight);
        if let Err(e) = &result {
            // The sender gets every refusal; the log a sample per kind.
            self.inner.refusals_logged.log(e.code(), |refusals| {
                tracing::info!(slc = %message.slc, server = %message.server, kind = message.kind.name(),
                    sequence = message.sequence, reason = %e, refusals_of_this_kind_since_last_line = refusals, "message refused");
            });
        }
        result
    }

    /// [`Carewatch::ingest`] for a caller that waits at most `deadline`:
    /// if the storage has not answered by then, the caller gets a retryable
    /// `StorageUnavailable` before its own deadline expires (a timeout on its
    /// side would be ambiguous). A heartbeat may still be written after
    /// that; the caller's retry is then acknowledged as a duplicate.
    pub async fn ingest_within(
        &self,
        message: IncomingMessage,
        deadline: Option<Duration>,
    ) -> Result<IngestAck> {
        let Some(deadline) = deadline else {
            return self.ingest(message).await;
        };
        // Time to send the answer back before the caller gives up.
        let budget = deadline.mul_f32(0.8);
        match tokio::time::timeout(budget, self.ingest(message)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(Error::StorageUnavailable {
                reason: crate::error::Unavailability::Unreachable,
                message: format!(
                    "the storage did not answer within the call's deadline ({deadline:?}); retry the same message"
                ),
                source: None,
            }),
        }
    }

    async fn ingest_inner(
        &self,
        message: &IncomingMessage,
        received_at: Timestamp,
    ) -> Result<IngestAck> {
        let config = &self.inner.config;
        if message.sealed.len() > config.max_message_bytes {
            return Err(Error::TooLarge {
                size: message.sealed.len(),
                limit: config.max_message_bytes,
            });
        }
        let slc = &message.slc;
        let envelope = Envelope::parse(&message.sealed);
        let key_id = envelope.as_ref().map_or(KeyId::new(0), Envelope::key_id);
        if message.kind == MessageKind::Heartbeat
            && let Ok(envelope) = &envelope
            && let Some(remembered) = self.inner.admission_cache.get(slc, key_id)
        {
            match self
                .ingest_remembered(message, envelope, &remembered, received_at)
                .await?
            {
                Remembered::Acknowledged(ack) => return Ok(ack),
                Remembered::Readmit => self.inner.admission_cache.forget(slc, key_id),
                // The key is right for another message; this one reads.
                Remembered::NotOpened => {}
            }
        }
        let query = AdmissionQuery {
            slc: slc.clone(),
            server: message.server.clone(),
            key: key_id,
        };
        let admission = self
            .inner
            .admissions
            .submit(query)
            .await?
            .ok_or_else(|| Error::UnknownInstallation { slc: slc.clone() })?;
        let cannot_decrypt = |reason| Error::CannotDecrypt {
            slc: slc.clone(),
            reason,
        };
        let envelope = envelope.map_err(cannot_decrypt)?;
        let wrapped = admission
            .key
            .ok_or_else(|| cannot_decrypt(SealError::UnknownKey(key_id)))?;
        let (key, _) = config.master_keys.unwrap_key(slc, &wrapped)?;
        let binding = Binding {
            slc,
            server: &message.server,
            kind: message.kind,
            sequence: message.sequence,
        };
        let plaintext = envelope.open(&key, &binding).map_err(cannot_decrypt)?;
        // Only a sender holding the key learns the installation's consent and
        // subscription state.
        auth::admit(&admission.installation, received_at)?;
        self.inner.admission_cache.remember(
            slc,
            RememberedAdmission {
                installation: admission.installation.clone(),
                key,
                version: admission.version,
            },
        );

        let digest = MessageDigest::of(&envelope);
        let last = admission
            .server
            .as_ref()
            .map(|s| s.cursor)
            .or(admission.deleted_server_cursor);
        let ack = |duplicate| IngestAck {
            received_at,
            heartbeat_interval: config.heartbeat_interval,
            duplicate,
        };
        if auth::check_sequence(
            slc,
            &message.server,
            last,
            message.sequence,
            digest,
            &message.sealed,
        )? == SequenceVerdict::Duplicate
        {
            return Ok(ack(true));
        }

        let next_check_at = self.next_check_after(received_at);
        let missed_before = match &admission.server {
            // From where the sweep counts: after a refusal (an expired
            // Care Plus, withdrawn consent) ended, not its last message.
            Some(s) if s.availability != Availability::Available => availability::missed_before(
                s.counted_since(),
                received_at,
                s.interval,
                &config.policy,
                &self.downtime_at(received_at),
            ),
            _ => 0,
        };
        let sign = SignOfLife {
            slc: slc.clone(),
            server: message.server.clone(),
            cursor: SequenceCursor {
                sequence: message.sequence,
                digest,
            },
            received_at,
            interval: config.heartbeat_interval,
            next_check_at,
            missed_before,
            remembered: None,
        };
        let may_append = message.kind == MessageKind::StatusReport
            || admission
                .server
                .as_ref()
                .is_none_or(|s| s.availability != Availability::Available);
        let outcome = match decode_message(message.kind, &plaintext)? {
            // Written together with the other heartbeats arriving meanwhile.
            None => self.inner.heartbeats.submit(sign).await?,
            Some(snapshot) => {
                self.inner
                    .store
                    .apply_status_report(&StatusWrite { sign, snapshot })
                    .await?
            }
        };
        match outcome {
            WriteOutcome::Applied(change) => {
                // A status report, a new server, a recovery or a new overview
                // line may have appended to the change feed.
                if change.is_some() || may_append {
                    self.feed_written();
                }
                Ok(ack(false))
            }
            WriteOutcome::Duplicate => Ok(ack(true)),
            WriteOutcome::Stale { last_accepted } => Err(Error::Replayed {
                slc: slc.clone(),
                server: message.server.clone(),
                sequence: message.sequence,
                last_accepted,
            }),
            // A store answers Readmit only to remembered signs.
            WriteOutcome::Readmit => Err(Error::Storage {
                message: "the store asked to readmit a heartbeat judged on an admission just read"
                    .into(),
                source: None,
            }),
        }
    }

    /// A heartbeat judged on a remembered admission: opened with the
    /// remembered key, admitted on the remembered installation, written with
    /// the admission's version. The common case of a known, available server
    /// only; anything else (and any refusal, which the remembered
    /// installation may no longer justify) goes back to reading.
    async fn ingest_remembered(
        &self,
        message: &IncomingMessage,
        envelope: &Envelope<'_>,
        remembered: &RememberedAdmission,
        received_at: Timestamp,
    ) -> Result<Remembered> {
        let binding = Binding {
            slc: &message.slc,
            server: &message.server,
            kind: message.kind,
            sequence: message.sequence,
        };
        let Ok(plaintext) = envelope.open(&remembered.key, &binding) else {
            return Ok(Remembered::NotOpened);
        };
        if auth::admit(&remembered.installation, received_at).is_err()
            || !matches!(decode_message(message.kind, &plaintext), Ok(None))
        {
            return Ok(Remembered::Readmit);
        }
        let sign = SignOfLife {
            slc: message.slc.clone(),
            server: message.server.clone(),
            cursor: SequenceCursor {
                sequence: message.sequence,
                digest: MessageDigest::of(envelope),
            },
            received_at,
            interval: self.inner.config.heartbeat_interval,
            next_check_at: self.next_check_after(received_at),
            // Applied only to an available server, which missed none.
            missed_before: 0,
            remembered: Some(remembered.version),
        };
        Ok(match self.inner.heartbeats.submit(sign).await? {
            WriteOutcome::Applied(change) => {
                if change.is_some() {
                    self.feed_written();
                }
                Remembered::Acknowledged(IngestAck {
                    received_at,
                    heartbeat_interval: self.inner.config.heartbeat_interval,
                    duplicate: false,
                })
            }
            WriteOutcome::Readmit | WriteOutcome::Duplicate | WriteOutcome::Stale { .. } => {
                Remembered::Readmit
            }
        })
    }

    /// When a server heard from at `received_at` must next be evaluated.
    fn next_check_after(&self, received_at: Timestamp) -> Timestamp {
        let config = &self.inner.config;
        // Windows before `received_at` cannot matter to the next check.
        availability::evaluate(
            Some(received_at),
            config.heartbeat_interval,
            &config.policy,
            &availability::Downtime::default(),
            received_at,
        )
        .next_change_at
        .unwrap_or(received_at)
    }
}

/// What judging a heartbeat on a remembered admission came to.
enum Remembered {
    Acknowledged(IngestAck),
    /// Not the common case, or the admission changed: read it and judge again.
    Readmit,
    /// The remembered key does not open this message: read (and refuse it
    /// there, with the reason).
    NotOpened,
}

impl IncomingMessage {
    /// Seals a heartbeat as a recording server would.
    pub fn heartbeat(
        key: &crate::seal::InstallationKey,
        slc: &Slc,
        server: &RecordingServerId,
        sequence: u64,
    ) -> Self {
        let binding = Binding {
            slc,
            server,
            kind: MessageKind::Heartbeat,
            sequence,
        };
        Self {
            slc: slc.clone(),
            server: server.clone(),
            kind: MessageKind::Heartbeat,
            sequence,
            sealed: crate::seal::seal(key, &binding, b""),
        }
    }

    /// Seals a status report (the server's current conditions) as a recording server would.
    pub fn status_report(
        key: &crate::seal::InstallationKey,
        slc: &Slc,
        server: &RecordingServerId,
        sequence: u64,
        snapshot: &crate::condition::StatusSnapshot,
    ) -> Self {
        let binding = Binding {
            slc,
            server,
            kind: MessageKind::StatusReport,
            sequence,
        };
        let plaintext = crate::seal::payload::encode_status(snapshot);
        Self {
            slc: slc.clone(),
            server: server.clone(),
            kind: MessageKind::StatusReport,
            sequence,
            sealed: crate::seal::seal(key, &binding, &plaintext),
        }
    }
}

/// A message between its receipt and its write; leaving (or being dropped,
/// when the caller gave up) unregisters it, and notes a stalled write.
struct InFlightMessage<'a> {
    carewatch: &'a Carewatch,
    slot: usize,
    stopwatch: Stopwatch,
    /// Read after registering (see [`super::in_flight::InFlight::enter`]).
    received_at: Timestamp,
}

impl<'a> InFlightMessage<'a> {
    fn enter(carewatch: &'a Carewatch) -> Self {
        let slot = carewatch.inner.in_flight.enter();
        Self {
            carewatch,
            slot,
            stopwatch: Stopwatch::start(),
            received_at: carewatch.now(),
        }
    }
}

impl Drop for InFlightMessage<'_> {
    fn drop(&mut self) {
        if self
            .stopwatch
            .exceeded(self.carewatch.inner.config.stall_limit)
        {
            self.carewatch.note_storage_stall(self.received_at);
        }
        self.carewatch.inner.in_flight.leave(self.slot);
    }
}
