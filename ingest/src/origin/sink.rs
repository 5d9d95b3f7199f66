//! The Kafka side of the origin, off every request's path: playback
//! requests are buffered (bounded) and produced in batches in the
//! background, stream lifecycle events as they happen. When the buffer is
//! full or the broker does not take a record, requests are dropped and
//! counted; viewers and publishers never wait on Kafka.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use livepulse_connectors::kafka::KafkaConfig;
use livepulse_contract::arrow::{EventColumns, RequestColumns};
use livepulse_contract::playback::PlaybackRequest;
use livepulse_contract::{Event, Family, Kind, now_ms, record, topics};
use metrics::counter;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use uuid::Uuid;

use super::health::SegmentHealth;
use super::keys::Identity;
use super::metrics::{ACCESS_DROPPED, ACCESS_PRODUCED, LIFECYCLE_DROPPED};

/// Buffered requests that trigger a flush before the next tick.
const FLUSH_AT_REQUESTS: usize = 5_000;
/// librdkafka's own queue, KiB: bounds the memory held while the broker is away.
const PRODUCER_QUEUE_KIB: &str = "65536";

/// A stream event to produce: a lifecycle change or a segment's health.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamEvent {
    /// The stream.
    pub identity: Identity,
    /// What happened.
    pub change: Change,
}

/// What a stream event says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Change {
    /// `stream`/`start`.
    Start,
    /// `stream`/`end`.
    End,
    /// `stream`/`health` of one segment of one rendition.
    Health(SegmentHealth),
}

impl Change {
    fn kind(&self) -> Kind {
        match self {
            Self::Start => Kind::Start,
            Self::End => Kind::End,
            Self::Health(_) => Kind::Health,
        }
    }
}

/// The handle requests use; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    requests: mpsc::Sender<PlaybackRequest>,
    events: mpsc::UnboundedSender<StreamEvent>,
}

/// The receiving ends, consumed by [`run`].
#[derive(Debug)]
pub(crate) struct Receivers {
    requests: mpsc::Receiver<PlaybackRequest>,
    events: mpsc::UnboundedReceiver<StreamEvent>,
}

#[cfg(test)]
impl Receivers {
    /// The next buffered request, if any.
    pub(crate) fn try_request(&mut self) -> Option<PlaybackRequest> {
        self.requests.try_recv().ok()
    }
}

/// How the background producer batches.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Batching {
    /// Flush at least this often.
    pub every: Duration,
    /// Largest record value, bytes.
    pub max_record_bytes: usize,
    /// How long `run` waits for the broker when stopping.
    pub delivery_timeout: Duration,
}

/// A producer for logs: `acks=all`, lz4 (the test broker cannot read
/// snappy), one request in flight per connection so lifecycle events stay
/// in order without idempotence (an idempotent producer whose records timed
/// out cannot produce again on the test broker). A retried batch can
/// therefore land twice; lifecycle events carry an `event_id` for that.
pub(crate) fn producer(
    kafka: &KafkaConfig,
    delivery_timeout: Duration,
) -> Result<FutureProducer, KafkaError> {
    kafka
        .client_config()
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("max.in.flight.requests.per.connection", "1")
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("queue.buffering.max.kbytes", PRODUCER_QUEUE_KIB)
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        )
        .create()
}

/// A sink buffering at most `capacity` requests, and its receivers.
pub(crate) fn channel(capacity: usize) -> (Sink, Receivers) {
    let (requests, requests_rx) = mpsc::channel(capacity);
    let (events, events_rx) = mpsc::unbounded_channel();
    (
        Sink { requests, events },
        Receivers {
            requests: requests_rx,
            events: events_rx,
        },
    )
}

impl Sink {
    /// Queues a request for the log, or drops and counts it when the buffer
    /// is full. Never waits.
    pub(crate) fn log(&self, request: PlaybackRequest) {
        if self.requests.try_send(request).is_err() {
            counter!(ACCESS_DROPPED, "reason" => "buffer_full").increment(1);
        }
    }

    /// Queues a stream event. Never dropped here: they are few (a start
    /// and an end per session, a health event per segment and rendition).
    pub(crate) fn announce(&self, event: StreamEvent) {
        if self.events.send(event).is_err() {
            counter!(LIFECYCLE_DROPPED, "event" => "stopped").increment(1);
        }
    }
}

/// Produces until `stop` fires, then drains both queues and flushes.
pub(crate) async fn run(
    mut rx: Receivers,
    producer: Arc<FutureProducer>,
    batching: Batching,
    mut stop: oneshot::Receiver<()>,
) {
    let mut pending: Vec<PlaybackRequest> = Vec::new();
    let mut tick = tokio::time::interval(batching.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(event) = rx.events.recv() => produce_event(&producer, &event),
            Some(request) = rx.requests.recv() => {
                pending.push(request);
                if pending.len() >= FLUSH_AT_REQUESTS {
                    flush(&producer, &mut pending, batching.max_record_bytes);
                }
            }
            _ = tick.tick() => flush(&producer, &mut pending, batching.max_record_bytes),
        }
    }
    while let Ok(event) = rx.events.try_recv() {
        produce_event(&producer, &event);
    }
    while let Ok(request) = rx.requests.try_recv() {
        pending.push(request);
    }
    flush(&producer, &mut pending, batching.max_record_bytes);
    let timeout = batching.delivery_timeout;
    let flushed = tokio::task::spawn_blocking(move || producer.flush(timeout)).await;
    match flushed {
        Ok(Ok(())) => info!("origin request log flushed"),
        Ok(Err(err)) => warn!(error = %err, "origin request log flush failed"),
        Err(err) => warn!(error = %err, "origin request log flush failed"),
    }
}

/// One record of the request log to produce.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// The partition of its streams ([`topics::partition_for`]).
    pub partition: i32,
    /// A columnar record value of playback requests.
    pub payload: Vec<u8>,
    /// Requests inside.
    pub requests: usize,
}

/// Packs requests (in order) into one record per partition, closing a
/// record at `max_bytes` (a single larger request still gets a record):
/// what the origin produces, public for benchmarks and tests.
pub fn pack_requests(requests: &[PlaybackRequest], max_bytes: usize) -> Vec<RequestRecord> {
    let mut order: Vec<i32> = Vec::new();
    let mut open: HashMap<i32, RequestColumns> = HashMap::new();
    let mut out = Vec::new();
    let partitions = topics::PLAYBACK_REQUESTS.partitions;
    for request in requests {
        let partition = topics::partition_for(&request.stream_id, partitions);
        let columns = open.entry(partition).or_insert_with(|| {
            order.push(partition);
            RequestColumns::default()
        });
        columns.push(request);
        if columns.size_estimate() >= max_bytes {
            out.extend(seal(partition, columns));
            order.retain(|p| *p != partition);
            open.remove(&partition);
        }
    }
    for partition in order {
        if let Some(mut columns) = open.remove(&partition) {
            out.extend(seal(partition, &mut columns));
        }
    }
    out
}

/// An open record's value; `None` (counted as dropped) if Arrow cannot
/// encode it, which valid requests never cause.
fn seal(partition: i32, columns: &mut RequestColumns) -> Option<RequestRecord> {
    let requests = columns.len();
    match columns.finish().and_then(|batch| record::encode(&batch)) {
        Ok(payload) => Some(RequestRecord {
            partition,
            payload,
            requests,
        }),
        Err(err) => {
            warn!(error = %err, "cannot encode a request-log record");
            counter!(ACCESS_DROPPED, "reason" => "encode").increment(requests as u64);
            None
        }
    }
}

fn flush(producer: &FutureProducer, pending: &mut Vec<PlaybackRequest>, max_bytes: usize) {
    if pending.is_empty() {
        return;
    }
    let batch = pack_requests(pending, max_bytes);
    pending.clear();
    let mut deliveries = Vec::with_capacity(batch.len());
    for record in batch {
        let sent = producer.send_result(
            FutureRecord::<(), _>::to(topics::PLAYBACK_REQUESTS.name)
                .partition(record.partition)
                .payload(record.payload.as_slice()),
        );
        match sent {
            Ok(delivery) => deliveries.push((delivery, record.requests as u64)),
            Err((err, _)) => {
                debug!(error = %err, "producer refused a request-log record");
                counter!(ACCESS_DROPPED, "reason" => "producer_queue")
                    .increment(record.requests as u64);
            }
        }
    }
    tokio::spawn(async move {
        for (delivery, requests) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => counter!(ACCESS_PRODUCED).increment(requests),
                _ => counter!(ACCESS_DROPPED, "reason" => "broker").increment(requests),
            }
        }
    });
}

/// The contract event of a stream event.
pub(crate) fn stream_event(event: &StreamEvent, ts: i64) -> Event<'static> {
    let mut built = Event {
        event_id: Cow::Owned(Uuid::new_v4().to_string()),
        ts,
        stream_id: Cow::Owned(event.identity.stream_id.to_string()),
        family: Some(Family::Stream),
        event: Some(event.change.kind()),
        creator_id: Some(Cow::Owned(event.identity.creator_id.to_string())),
        ..Event::default()
    };
    if let Change::Health(health) = &event.change {
        built.rendition = health
            .rendition
            .as_deref()
            .map(|r| Cow::Owned(r.to_owned()));
        built.segment_ms = Some(health.segment_ms);
        built.bitrate_kbps = Some(health.bitrate_kbps);
        built.frame_rate = health.frame_rate;
        built.keyframe_interval_ms = health.keyframe_interval_ms;
    }
    built
}

fn produce_event(producer: &FutureProducer, event: &StreamEvent) {
    let ts = now_ms();
    let label = event.change.kind().as_str();
    let mut columns = EventColumns::default();
    let encoded = columns
        .push(&stream_event(event, ts), ts)
        .map_err(|e| e.to_string())
        .and_then(|()| columns.finish().map_err(|e| e.to_string()))
        .and_then(|batch| record::encode(&batch).map_err(|e| e.to_string()));
    let payload = match encoded {
        Ok(payload) => payload,
        Err(err) => {
            warn!(error = %err, "cannot encode a stream event");
            counter!(LIFECYCLE_DROPPED, "event" => label).increment(1);
            return;
        }
    };
    let topic = topics::STREAM_EVENTS;
    let sent = producer.send_result(
        FutureRecord::<(), _>::to(topic.name)
            .partition(topics::partition_for(
                &event.identity.stream_id,
                topic.partitions,
            ))
            .payload(payload.as_slice()),
    );
    match sent {
        Ok(delivery) => {
            let stream_id = event.identity.stream_id.clone();
            tokio::spawn(async move {
                if !matches!(delivery.await, Ok(Ok(_))) {
                    warn!(%stream_id, event = label, "stream event not acknowledged");
                    counter!(LIFECYCLE_DROPPED, "event" => label).increment(1);
                }
            });
        }
        Err((err, _)) => {
            warn!(stream_id = %event.identity.stream_id, event = label, error = %err, "stream event refused");
            counter!(LIFECYCLE_DROPPED, "event" => label).increment(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use livepulse_contract::Limits;
    use livepulse_contract::arrow::requests_of;
    use livepulse_contract::playback::ObjectKind;
    use livepulse_contract::record::Payload;

    use super::*;

    fn request(stream: &str, n: u64) -> PlaybackRequest {
        PlaybackRequest {
            request_id: "00000000-0000-4000-8000-000000000000".into(),
            received_ms: 1_700_000_000_000,
            stream_id: stream.into(),
            rendition: Some("720p".into()),
            object: format!("seg{n:05}.m4s"),
            object_kind: ObjectKind::Segment,
            status: 200,
            bytes_sent: n,
            complete: true,
            ttfb_us: Some(10),
            ttlb_us: Some(20),
            client_cohort: "192.0.2.0/24".into(),
            cmcd: None,
        }
    }

    fn decode(record: &RequestRecord) -> (Vec<String>, Vec<u64>) {
        let batch = record::decode(Payload::PlaybackRequests, &record.payload).unwrap();
        let requests = requests_of(&batch).unwrap();
        assert!(requests.iter().all(|r| {
            topics::partition_for(&r.stream_id, topics::STREAM_PARTITIONS) == record.partition
        }));
        requests
            .into_iter()
            .map(|r| (r.stream_id, r.bytes_sent))
            .unzip()
    }

    #[test]
    fn packs_by_partition_in_order_and_splits_at_the_limit() {
        let partition = |s: &str| topics::partition_for(s, topics::STREAM_PARTITIONS);
        let other = (0..64)
            .map(|i| format!("s{i}"))
            .find(|s| partition(s) != partition("a"))
            .unwrap();
        let all = [
            request("a", 1),
            request(&other, 2),
            request("a", 3),
            request("a", 4),
            request("a", 5),
        ];
        let whole = pack_requests(&all, 1 << 20);
        let shape: Vec<_> = whole.iter().map(|r| (r.partition, decode(r).1)).collect();
        assert_eq!(
            shape,
            [
                (partition("a"), vec![1, 3, 4, 5]),
                (partition(&other), vec![2])
            ]
        );
        // A record closes at the estimate of two requests.
        let mut two = RequestColumns::default();
        all[2..4].iter().for_each(|r| two.push(r));
        let split = pack_requests(&all, two.size_estimate());
        let shape: Vec<_> = split.iter().map(|r| (r.partition, decode(r).1)).collect();
        assert_eq!(
            shape,
            [
                (partition("a"), vec![1, 3]),
                (partition("a"), vec![4, 5]),
                (partition(&other), vec![2])
            ]
        );
        assert_eq!(pack_requests(&all, 10).len(), 5);
    }

    #[test]
    fn stream_events_pass_the_contract() {
        let health = SegmentHealth {
            rendition: Some("720p".into()),
            segment_ms: 1001,
            bitrate_kbps: 2900,
            frame_rate: Some(29.97),
            keyframe_interval_ms: Some(1001),
        };
        let audio = SegmentHealth {
            rendition: None,
            frame_rate: None,
            keyframe_interval_ms: None,
            ..health.clone()
        };
        for change in [
            Change::Start,
            Change::End,
            Change::Health(health),
            Change::Health(audio),
        ] {
            let event = StreamEvent {
                identity: Identity {
                    stream_id: "s1".into(),
                    creator_id: "c1".into(),
                },
                change: change.clone(),
            };
            let now = now_ms();
            let built = stream_event(&event, now);
            assert_eq!(
                built.validate(now, &Limits::default()),
                Ok(()),
                "{change:?}"
            );
            assert_eq!(built.creator_id.as_deref(), Some("c1"));
            assert_eq!(built.event, Some(change.kind()));
            if let Change::Health(h) = &change {
                assert_eq!(built.rendition.as_deref(), h.rendition.as_deref());
                assert_eq!(
                    (built.segment_ms, built.bitrate_kbps, built.frame_rate),
                    (Some(h.segment_ms), Some(h.bitrate_kbps), h.frame_rate)
                );
                assert_eq!(built.keyframe_interval_ms, h.keyframe_interval_ms);
            }
        }
    }
}
