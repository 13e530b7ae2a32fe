//! Ingest: recording servers' heartbeats and status reports.

use std::pin::Pin;

use carewatch_core::seal::MessageKind;
use carewatch_core::{Carewatch, Error, IncomingMessage, IngestAck};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::convert::{self, duration, timestamp};
use crate::proto::ingest_server::Ingest;
use crate::proto::{self, stream_reply};
use crate::status::{code_for, to_status, too_large, until_stopped};

/// Serves [`Ingest`].
#[derive(Debug, Clone)]
pub struct IngestService {
    carewatch: Carewatch,
}

impl IngestService {
    /// Over a Carewatch service; open streams end with UNAVAILABLE when it
    /// stops receiving.
    pub fn new(carewatch: Carewatch) -> Self {
        Self { carewatch }
    }

    async fn handle(
        &self,
        kind: MessageKind,
        message: proto::SealedMessage,
        deadline: Option<std::time::Duration>,
    ) -> Result<IngestAck, Error> {
        let incoming = IncomingMessage {
            slc: convert::slc(&message.slc)?,
            server: convert::server_id(&message.recording_server_id)?,
            kind,
            sequence: message.sequence,
            sealed: message.sealed,
        };
        self.carewatch.ingest_within(incoming, deadline).await
    }
}

/// The caller's deadline from its `grpc-timeout` header (`<digits><unit>`,
/// unit H, M, S, m, u or n); `None` if absent or malformed.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<std::time::Duration> {
    use std::time::Duration;
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok().filter(|_| digits.len() <= 8)?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn ack(a: IngestAck) -> proto::Ack {
    proto::Ack {
        received_at: Some(timestamp(a.received_at)),
        heartbeat_interval: Some(duration(a.heartbeat_interval)),
        duplicate: a.duplicate,
    }
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<proto::StreamReply, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn heartbeat(
        &self,
        request: Request<proto::SealedMessage>,
    ) -> Result<Response<proto::Ack>, Status> {
        let deadline = grpc_timeout(request.metadata());
        let ack_ = self
            .handle(MessageKind::Heartbeat, request.into_inner(), deadline)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ack(ack_)))
    }

    async fn status_report(
        &self,
        request: Request<proto::SealedMessage>,
    ) -> Result<Response<proto::Ack>, Status> {
        let deadline = grpc_timeout(request.metadata());
        let ack_ = self
            .handle(MessageKind::StatusReport, request.into_inner(), deadline)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ack(ack_)))
    }

    type StreamStream = ReplyStream;

    async fn stream(
        &self,
        request: Request<Streaming<proto::StreamMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        // Each message is applied by a task of the stream's own, not inside
        // the reply stream: hyper polls that only while the client takes
        // replies, and a message applied there would stay registered in
        // flight while a client that never reads (or keeps its window
        // shut) holds it, and every sweep waits for messages in flight.
        // Once the replies waiting are this many, the task stops reading:
        // the client is held back by flow control, not by a parked write.
        const REPLIES_AHEAD: usize = 16;
        let service = self.clone();
        let mut requests = request.into_inner();
        let (replies, waiting) = tokio::sync::mpsc::channel(REPLIES_AHEAD);
        tokio::spawn(async move {
            loop {
                // Ends with the reply stream too (the service stopping, the
                // client gone): the request half is then reset at once.
                let item = tokio::select! {
                    item = requests.next() => item,
                    () = replies.closed() => break,
                };
                let Some(item) = item else { break };
                let reply = service.reply(item).await;
                // An error ends the stream, as its status.
                let last = reply.is_err();
                if replies.send(reply).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(until_stopped(
            tokio_stream::wrappers::ReceiverStream::new(waiting),
            &self.carewatch,
        ))))
    }
}

impl IngestService {
    /// The reply to one stream message, once it is applied or refused.
    async fn reply(
        &self,
        item: Result<proto::StreamMessage, Status>,
    ) -> Result<proto::StreamReply, Status> {
        let item = item.map_err(|status| {
            if crate::routes::is_transport_too_large(&status) {
                too_large(self.carewatch.config().max_message_bytes())
            } else if crate::routes::is_undecodable(&status) {
                to_status(Error::InvalidInput {
                    field: "stream message",
                    reason: format!("not a valid StreamMessage: {}", status.message()),
                })
            } else {
                status
            }
        })?;
        let sequence = item.message.as_ref().map_or(0, |m| m.sequence);
        let result = match (proto::MessageKind::try_from(item.kind), item.message) {
            (Ok(proto::MessageKind::Heartbeat), Some(m)) => {
                self.handle(MessageKind::Heartbeat, m, None).await
            }
            (Ok(proto::MessageKind::StatusReport), Some(m)) => {
                self.handle(MessageKind::StatusReport, m, None).await
            }
            _ => Err(Error::InvalidInput {
                field: "stream message",
                reason: "needs a kind (heartbeat or status report) and a message".into(),
            }),
        };
        let result = match result {
            Ok(a) => stream_reply::Result::Ack(ack(a)),
            Err(e) => stream_reply::Result::Refusal(proto::Refusal {
                code: code_for(&e) as i32,
                reason: e.to_string(),
                kind: e.code().to_owned(),
            }),
        };
        Ok(proto::StreamReply {
            sequence,
            result: Some(result),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::grpc_timeout;

    #[test]
    fn grpc_timeouts_parse_and_bad_ones_are_ignored() {
        let at = |value: &'static str| {
            let mut metadata = tonic::metadata::MetadataMap::new();
            metadata.insert("grpc-timeout", value.parse().expect("ascii"));
            grpc_timeout(&metadata)
        };
        assert_eq!(at("1000m"), Some(Duration::from_secs(1)));
        assert_eq!(at("2S"), Some(Duration::from_secs(2)));
        assert_eq!(at("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(at("5x"), None);
        assert_eq!(at("m"), None);
        assert_eq!(at("123456789S"), None, "at most 8 digits");
        assert_eq!(grpc_timeout(&tonic::metadata::MetadataMap::new()), None);
    }
}
