//! One `Ingest.Stream` per worker, one message in flight on it, and what a
//! worker records ([`Acks`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use carewatch_cli::simulate::SimServer;
use carewatch_core::seal::MessageKind;
use carewatch_grpc::proto::{self, ingest_client::IngestClient};
use futures::TryStreamExt;
use tokio::sync::mpsc;
use tonic::transport::Channel;

use super::Clock;

/// Pause before a worker opens a stream again after an error.
pub(super) const REOPEN_AFTER: Duration = Duration::from_millis(100);

/// One long-lived `Ingest.Stream`, one message in flight on it.
pub(super) struct Pipe {
    tx: mpsc::Sender<proto::StreamMessage>,
    replies: tonic::Streaming<proto::StreamReply>,
}

impl Pipe {
    async fn open(client: &mut IngestClient<Channel>) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel::<proto::StreamMessage>(1);
        let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
        let replies = client
            .stream(requests)
            .await
            .map_err(|status| format!("{:?}", status.code()))?
            .into_inner();
        Ok(Self { tx, replies })
    }

    /// Sends `server`'s next message (its first is a status report, then
    /// heartbeats) and waits for its acknowledgement.
    async fn send(&mut self, server: &mut SimServer) -> Result<(), String> {
        let (kind, message) = server.next_message();
        let kind = match kind {
            MessageKind::Heartbeat => proto::MessageKind::Heartbeat,
            MessageKind::StatusReport => proto::MessageKind::StatusReport,
        };
        let item = proto::StreamMessage {
            kind: kind as i32,
            message: Some(message),
        };
        self.tx
            .send(item)
            .await
            .map_err(|_| "stream closed".to_owned())?;
        match self.replies.try_next().await {
            Ok(Some(proto::StreamReply {
                result: Some(proto::stream_reply::Result::Ack(_)),
                ..
            })) => {
                if kind == proto::MessageKind::StatusReport {
                    server.report_acknowledged();
                }
                Ok(())
            }
            Ok(Some(reply)) => Err(format!("refused: {:?}", reply.result)),
            Ok(None) => Err("stream ended".into()),
            Err(status) => Err(format!("{:?}", status.code())),
        }
    }
}

/// Sends `server`'s next message on `pipe`, opening it first if needed;
/// an error closes the pipe (the next call opens another).
pub(super) async fn send_on(
    client: &mut IngestClient<Channel>,
    pipe: &mut Option<Pipe>,
    server: &mut SimServer,
) -> Result<(), String> {
    if pipe.is_none() {
        *pipe = Some(Pipe::open(client).await?);
    }
    let Some(open) = pipe.as_mut() else {
        return Err("no stream".into());
    };
    let result = open.send(server).await;
    if result.is_err() {
        *pipe = None;
    }
    result
}

/// What one worker of a [`PacedFleet`](super::PacedFleet) or a [`Flood`](super::Flood)
/// recorded.
#[derive(Debug, Default)]
pub struct Acks {
    /// Each acknowledged message (the first status report, then
    /// heartbeats): when it was acknowledged (ms since the origin) and how
    /// long it took (µs).
    pub acks: Vec<(u32, u32)>,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
    /// The longest a server of a paced fleet went between two messages
    /// beyond its interval (0 if it always kept it), from its third message
    /// after a start or resumption on; a silence not counted.
    pub max_late: Duration,
}

impl Acks {
    pub(super) fn merge(&mut self, other: Acks) {
        self.max_late = self.max_late.max(other.max_late);
        self.acks.extend(other.acks);
        for (code, n) in other.errors {
            *self.errors.entry(code).or_default() += n;
        }
    }

    pub(super) fn record(&mut self, clock: &Clock, sent: Instant, result: Result<(), String>) {
        match result {
            Ok(()) => self.acks.push((
                clock.now_ms(),
                u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX),
            )),
            Err(e) => *self.errors.entry(e).or_default() += 1,
        }
    }

    /// Failures of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Sorts the acknowledgements by time.
    pub fn sort(&mut self) {
        self.acks.sort_unstable();
    }
}
