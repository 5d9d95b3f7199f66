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
use livepulse_contract::playback::PlaybackRequest;
use livepulse_contract::{Event, EventBatch, Family, Kind, SCHEMA_VERSION, now_ms, topics};
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

/// One record to produce.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// `stream_id`.
    pub key: String,
    /// A `PlaybackBatch` as JSON.
    pub payload: Vec<u8>,
    /// Requests inside.
    pub requests: usize,
}

/// Groups requests by stream (in order) into records of at most
/// `max_bytes` (a single larger request still gets a record).
pub(crate) fn records(requests: &[PlaybackRequest], max_bytes: usize) -> Vec<Record> {
    // The compact JSON of a `PlaybackBatch`, written directly so each
    // request is serialized once.
    let head = format!("{{\"schema_version\":{SCHEMA_VERSION},\"requests\":[");
    let mut order: Vec<&str> = Vec::new();
    let mut open: HashMap<&str, Record> = HashMap::new();
    let mut out = Vec::new();
    for request in requests {
        let Ok(json) = serde_json::to_vec(request) else {
            continue;
        };
        let key = request.stream_id.as_str();
        let record = open.entry(key).or_insert_with(|| {
            order.push(key);
            Record {
                key: key.to_owned(),
                payload: head.clone().into_bytes(),
                requests: 0,
            }
        });
        if record.requests > 0 && record.payload.len() + 1 + json.len() + 2 > max_bytes {
            let mut full = std::mem::replace(
                record,
                Record {
                    key: key.to_owned(),
                    payload: head.clone().into_bytes(),
                    requests: 0,
                },
            );
            full.payload.extend_from_slice(b"]}");
            out.push(full);
        }
        if record.requests > 0 {
            record.payload.push(b',');
        }
        record.payload.extend_from_slice(&json);
        record.requests += 1;
    }
    for key in order {
        if let Some(mut record) = open.remove(key) {
            record.payload.extend_from_slice(b"]}");
            out.push(record);
        }
    }
    out
}

fn flush(producer: &FutureProducer, pending: &mut Vec<PlaybackRequest>, max_bytes: usize) {
    if pending.is_empty() {
        return;
    }
    let batch = records(pending, max_bytes);
    pending.clear();
    let mut deliveries = Vec::with_capacity(batch.len());
    for record in batch {
        let sent = producer.send_result(
            FutureRecord::to(topics::PLAYBACK_REQUESTS.name)
                .key(record.key.as_str())
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
    let batch = EventBatch {
        schema_version: SCHEMA_VERSION,
        received_ms: ts,
        events: vec![stream_event(event, ts)],
    };
    let label = event.change.kind().as_str();
    let Ok(payload) = serde_json::to_vec(&batch) else {
        counter!(LIFECYCLE_DROPPED, "event" => label).increment(1);
        return;
    };
    let sent = producer.send_result(
        FutureRecord::to(topics::STREAM_EVENTS.name)
            .key(&*event.identity.stream_id)
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
    use livepulse_contract::playback::{ObjectKind, PlaybackBatch};

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

    fn decode(record: &Record) -> Vec<u64> {
        let batch: PlaybackBatch = serde_json::from_slice(&record.payload).unwrap();
        assert_eq!(batch.schema_version, SCHEMA_VERSION);
        assert!(batch.requests.iter().all(|r| r.stream_id == record.key));
        batch.requests.iter().map(|r| r.bytes_sent).collect()
    }

    #[test]
    fn groups_by_stream_in_order_and_splits_at_the_limit() {
        let all = [
            request("a", 1),
            request("b", 2),
            request("a", 3),
            request("a", 4),
            request("a", 5),
        ];
        let whole = records(&all, 1 << 20);
        let shape: Vec<_> = whole.iter().map(|r| (r.key.as_str(), decode(r))).collect();
        assert_eq!(shape, [("a", vec![1, 3, 4, 5]), ("b", vec![2])]);
        // Exactly two requests fit a record as large as a two-request record.
        let two = records(&all[2..4], 1 << 20)[0].payload.len();
        let split = records(&all, two);
        let shape: Vec<_> = split.iter().map(|r| (r.key.as_str(), decode(r))).collect();
        assert_eq!(
            shape,
            [("a", vec![1, 3]), ("a", vec![4, 5]), ("b", vec![2])]
        );
        assert!(split.iter().all(|r| r.payload.len() <= two));
        let tiny = records(&all, 10);
        assert_eq!(tiny.len(), 5);
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
