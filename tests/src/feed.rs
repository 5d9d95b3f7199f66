//! Feeding events straight to the broker, encoded as the collector encodes
//! them, for tests of the pipeline alone.

use std::time::Duration;

use livepulse_connectors::kafka::send_all;
use livepulse_contract::playback::PlaybackRequest;
use livepulse_contract::{Event, Limits, now_ms, topics};
use livepulse_ingest::collector::batch::{Record, pack, prepare};
use livepulse_ingest::origin::pack_requests;
use rdkafka::producer::FutureProducer;

const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Produces `events` as the collector would, 200 at a time: packed into one
/// columnar record per (topic, partition). Panics on an invalid event or a
/// failed delivery.
pub async fn produce(producer: &FutureProducer, events: &[Event<'static>]) {
    // Test streams are generated in the past; only the shape is checked.
    let limits = Limits {
        max_future_ms: i64::MAX / 4,
        max_past_ms: i64::MAX / 4,
    };
    let elements: Vec<Vec<u8>> = events
        .iter()
        .map(|e| serde_json::to_vec(e).expect("events serialize"))
        .collect();
    for chunk in elements.chunks(200) {
        let chunk: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        let now = now_ms();
        let prepared = prepare(&chunk, now, &limits);
        assert!(prepared.rejected.is_empty(), "{:?}", prepared.rejected);
        let records = pack(&prepared.accepted, now, 512 * 1024).expect("events pack");
        let sent = send_all(
            producer,
            records.iter().map(Record::parts),
            DELIVERY_TIMEOUT,
        )
        .await;
        if let Err(e) = sent {
            panic!("producing to the test broker: {e}");
        }
    }
}

/// Produces `requests` as the origin would, 1,000 at a time: packed into one
/// columnar record per partition of the request log. Panics on a failed
/// delivery.
pub async fn produce_requests(producer: &FutureProducer, requests: &[PlaybackRequest]) {
    for chunk in requests.chunks(1_000) {
        let records = pack_requests(chunk, 512 * 1024);
        let records = records.iter().map(|r| {
            (
                topics::PLAYBACK_REQUESTS.name,
                r.partition,
                r.payload.as_slice(),
            )
        });
        if let Err(e) = send_all(producer, records, DELIVERY_TIMEOUT).await {
            panic!("producing to the test broker: {e}");
        }
    }
}
