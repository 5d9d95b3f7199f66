//! From body elements to Kafka records (public so benchmarks and tests
//! produce exactly what the collector produces): per-event validation, then
//! packing the accepted events into columnar records, one per (topic,
//! partition), each bounded in size.
//!
//! A stream's events all go to one partition
//! ([`partition_for`](livepulse_contract::topics::partition_for)), in the
//! order the collector accepted them, so per-stream order holds however many
//! streams share a record.

use std::collections::HashMap;

use arrow_schema::ArrowError;
use livepulse_contract::arrow::EventColumns;
use livepulse_contract::arrow::events::UntypedEvent;
use livepulse_contract::{Event, Limits, Rejection, record, topics};
use thiserror::Error;

/// One Kafka record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Topic, from the events' family.
    pub topic: &'static str,
    /// Partition, from the events' streams.
    pub partition: i32,
    /// A columnar record value ([`record::encode`]).
    pub payload: Vec<u8>,
    /// Events inside.
    pub events: usize,
}

impl Record {
    /// (topic, partition, payload), as
    /// [`livepulse_connectors::kafka::send_all`] takes records.
    pub fn parts(&self) -> (&str, i32, &[u8]) {
        (self.topic, self.partition, &self.payload)
    }
}

/// An event the client sent that will not be produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Position in the batch, from 0.
    pub index: usize,
    /// Why.
    pub rejection: Rejection,
}

/// What a batch turns into.
#[derive(Debug, Default, PartialEq)]
pub struct Prepared<'a> {
    /// Events that passed validation, in batch order.
    pub accepted: Vec<Event<'a>>,
    /// Events that did not, in batch order.
    pub rejected: Vec<Rejected>,
}

/// Why accepted events could not become a record.
#[derive(Debug, Error)]
pub enum PackError {
    /// An event without a family (validation makes this impossible).
    #[error(transparent)]
    Untyped(#[from] UntypedEvent),
    /// Arrow could not encode the record.
    #[error("cannot encode a record: {0}")]
    Arrow(#[from] ArrowError),
}

/// Parses and validates each element on its own.
pub fn prepare<'a>(elements: &[&'a [u8]], now_ms: i64, limits: &Limits) -> Prepared<'a> {
    let mut prepared = Prepared::default();
    for (index, element) in elements.iter().enumerate() {
        let checked = serde_json::from_slice::<Event>(element)
            .map_err(|err| Rejection::Malformed(err.to_string()))
            .and_then(|event| event.validate(now_ms, limits).map(|()| event));
        match checked {
            Ok(event) => prepared.accepted.push(event),
            Err(rejection) => prepared.rejected.push(Rejected { index, rejection }),
        }
    }
    prepared
}

/// The (topic, partition) an accepted event is produced to.
pub fn destination(event: &Event<'_>) -> Result<(&'static str, i32), UntypedEvent> {
    let family = event
        .family
        .ok_or_else(|| UntypedEvent(event.event_id.to_string()))?;
    let topic = topics::for_family(family);
    Ok((
        topic.name,
        topics::partition_for(&event.stream_id, topic.partitions),
    ))
}

/// Whether an open record is as large as a record may be.
pub(crate) fn is_full(columns: &EventColumns, max_record_bytes: usize) -> bool {
    columns.size_estimate() >= max_record_bytes
}

/// Open records per (topic, partition), filled event by event: what the
/// collector does across requests, for code that has all events at hand.
///
/// ```
/// use livepulse_contract::{Event, Limits};
/// use livepulse_ingest::collector::batch::{Packer, prepare};
///
/// let like = br#"{"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","ts":1700000000000,
///   "stream_id":"s1","type":"chat","event":"like","viewer_id":"v1"}"#;
/// let prepared = prepare(&[like.as_slice()], 1_700_000_000_000, &Limits::default());
/// let mut packer = Packer::new(512 * 1024);
/// for event in &prepared.accepted {
///     assert!(packer.push(event, 1_700_000_000_000).unwrap().is_none());
/// }
/// let records = packer.finish().unwrap();
/// assert_eq!((records[0].topic, records[0].events), ("livepulse.chat.v1", 1));
/// ```
pub struct Packer {
    max_record_bytes: usize,
    open: HashMap<(&'static str, i32), EventColumns>,
    /// Destinations in the order their records opened.
    order: Vec<(&'static str, i32)>,
}

impl Packer {
    /// A packer closing records at `max_record_bytes` (a single larger event
    /// still gets a record of its own).
    pub fn new(max_record_bytes: usize) -> Self {
        Self {
            max_record_bytes,
            open: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// Adds an accepted event received at `received_ms`; returns its record
    /// when the event filled it.
    pub fn push(
        &mut self,
        event: &Event<'_>,
        received_ms: i64,
    ) -> Result<Option<Record>, PackError> {
        let key = destination(event)?;
        let columns = self.open.entry(key).or_insert_with(|| {
            self.order.push(key);
            EventColumns::default()
        });
        columns.push(event, received_ms)?;
        if !is_full(columns, self.max_record_bytes) {
            return Ok(None);
        }
        self.order.retain(|k| *k != key);
        let mut full = self.open.remove(&key).unwrap_or_default();
        Ok(Some(seal(key, &mut full)?))
    }

    /// Every open record, in the order they opened.
    pub fn finish(&mut self) -> Result<Vec<Record>, PackError> {
        let mut records = Vec::with_capacity(self.order.len());
        for key in std::mem::take(&mut self.order) {
            if let Some(mut columns) = self.open.remove(&key) {
                records.push(seal(key, &mut columns)?);
            }
        }
        Ok(records)
    }
}

/// Encodes an open record.
pub(crate) fn seal(
    (topic, partition): (&'static str, i32),
    columns: &mut EventColumns,
) -> Result<Record, PackError> {
    let events = columns.len();
    let payload = record::encode(&columns.finish()?)?;
    Ok(Record {
        topic,
        partition,
        payload,
        events,
    })
}

/// `events`, all received at `received_ms`, packed into records.
pub fn pack(
    events: &[Event<'_>],
    received_ms: i64,
    max_record_bytes: usize,
) -> Result<Vec<Record>, PackError> {
    let mut packer = Packer::new(max_record_bytes);
    let mut records = Vec::new();
    for event in events {
        records.extend(packer.push(event, received_ms)?);
    }
    records.extend(packer.finish()?);
    Ok(records)
}

#[cfg(test)]
mod tests {
    use arrow_array::cast::AsArray;
    use livepulse_contract::record::{Payload, decode};

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn chat(stream: &str, n: usize) -> String {
        format!(
            r#"{{"event_id":"6f1c8a52-2f43-4a55-9a33-{n:012}","ts":{NOW},"stream_id":"{stream}","type":"chat","event":"message","viewer_id":"v","text":"{}"}}"#,
            "x".repeat(100)
        )
    }

    fn ids_of(record: &Record) -> Vec<String> {
        let batch = decode(Payload::Events, &record.payload).unwrap();
        let ids = batch.column_by_name("event_id").unwrap().as_string::<i32>();
        ids.iter().map(|id| id.unwrap().to_owned()).collect()
    }

    #[test]
    fn packs_by_topic_and_partition_in_acceptance_order() {
        let stream_start = format!(
            r#"{{"event_id":"6f1c8a52-2f43-4a55-9a33-000000000009","ts":{NOW},"stream_id":"a","type":"stream","event":"start","creator_id":"c"}}"#
        );
        // `c` shares `a`'s partition, `b` does not.
        let partition = |s: &str| topics::partition_for(s, topics::STREAM_PARTITIONS);
        let pa = partition("a");
        let streams: Vec<String> = (0..64).map(|i| format!("s{i}")).collect();
        let b = streams.iter().find(|s| partition(s) != pa).unwrap();
        let c = streams.iter().find(|s| partition(s) == pa).unwrap();
        let pb = partition(b);
        let lines = [
            chat("a", 1),
            chat(b, 2),
            stream_start,
            chat(c, 3),
            "{".into(),
        ];
        let elements: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let prepared = prepare(&elements, NOW, &Limits::default());
        assert_eq!(prepared.accepted.len(), 4);
        assert_eq!(prepared.rejected.len(), 1);
        assert_eq!(prepared.rejected[0].index, 4);
        assert_eq!(prepared.rejected[0].rejection.code(), "malformed");
        let records = pack(&prepared.accepted, NOW, 65_536).unwrap();
        let shape: Vec<_> = records
            .iter()
            .map(|r| (r.topic, r.partition, r.events))
            .collect();
        assert_eq!(
            shape,
            [
                ("livepulse.chat.v1", pa, 2),
                ("livepulse.chat.v1", pb, 1),
                ("livepulse.stream.v1", pa, 1)
            ]
        );
        assert_eq!(
            ids_of(&records[0]),
            [
                "6f1c8a52-2f43-4a55-9a33-000000000001",
                "6f1c8a52-2f43-4a55-9a33-000000000003"
            ]
        );
    }

    #[test]
    fn closes_records_at_the_size_limit() {
        let lines: Vec<String> = (0..10).map(|n| chat("s", n)).collect();
        let elements: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let events = prepare(&elements, NOW, &Limits::default()).accepted;
        let whole = pack(&events, NOW, 1 << 20).unwrap();
        assert_eq!(whole.len(), 1);
        // The estimate of three events closes a record at the third.
        let mut three = EventColumns::default();
        for e in &events[..3] {
            three.push(e, NOW).unwrap();
        }
        let limit = three.size_estimate();
        let counts: Vec<usize> = pack(&events, NOW, limit)
            .unwrap()
            .iter()
            .map(|r| r.events)
            .collect();
        assert_eq!(counts, [3, 3, 3, 1]);
        let ids: Vec<String> = pack(&events, NOW, limit + 1)
            .unwrap()
            .iter()
            .flat_map(ids_of)
            .collect();
        assert_eq!(ids, ids_of(&whole[0]));
        // Too small for even one event: each event still gets its record.
        assert_eq!(pack(&events[..2], NOW, 10).unwrap().len(), 2);
    }
}
