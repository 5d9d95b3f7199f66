//! From body elements to Kafka records (public so benchmarks replay exactly
//! what the collector produces): per-event validation, grouping by
//! (topic, stream) in client order, and splitting into bounded records.

use std::collections::HashMap;
use std::io;

use livepulse_contract::{Event, EventBatch, Family, Limits, Rejection, SCHEMA_VERSION, topics};

/// One Kafka record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Topic, from the events' family.
    pub topic: &'static str,
    /// `stream_id`, so a stream's records stay in one partition, in order.
    pub key: String,
    /// An [`EventBatch`] as JSON.
    pub payload: Vec<u8>,
    /// Events inside.
    pub events: usize,
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
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// Events that passed validation.
    pub accepted: usize,
    /// Events that did not, in batch order.
    pub rejected: Vec<Rejected>,
    /// The accepted events as records.
    pub records: Vec<Record>,
}

/// The accepted events of one (topic, stream), in client order.
struct Group<'a> {
    family: Family,
    stream_id: String,
    events: Vec<Event<'a>>,
}

/// Parses and validates each element on its own, then packs the accepted
/// events into records of at most `max_record_bytes` (a single event larger
/// than that still gets a record of its own).
pub fn prepare(
    elements: &[&[u8]],
    now_ms: i64,
    limits: &Limits,
    max_record_bytes: usize,
) -> Result<Prepared, serde_json::Error> {
    let mut prepared = Prepared::default();
    let mut groups: Vec<Group> = Vec::new();
    let mut by_key: HashMap<(Family, String), usize> = HashMap::new();
    for (index, element) in elements.iter().enumerate() {
        let event = match serde_json::from_slice::<Event>(element) {
            Ok(event) => event,
            Err(err) => {
                let rejection = Rejection::Malformed(err.to_string());
                prepared.rejected.push(Rejected { index, rejection });
                continue;
            }
        };
        let family = match (event.validate(now_ms, limits), event.family) {
            (Ok(()), Some(family)) => family,
            (Err(rejection), _) => {
                prepared.rejected.push(Rejected { index, rejection });
                continue;
            }
            // validate() already requires `type`; kept total rather than panicking.
            (Ok(()), None) => {
                let rejection = Rejection::MissingDiscriminator("type");
                prepared.rejected.push(Rejected { index, rejection });
                continue;
            }
        };
        prepared.accepted += 1;
        let slot = *by_key
            .entry((family, event.stream_id.to_string()))
            .or_insert_with(|| {
                groups.push(Group {
                    family,
                    stream_id: event.stream_id.to_string(),
                    events: Vec::new(),
                });
                groups.len() - 1
            });
        groups[slot].events.push(event);
    }
    for group in groups {
        split(group, now_ms, max_record_bytes, &mut prepared.records)?;
    }
    Ok(prepared)
}

/// Appends `group` to `out` as records whose JSON stays within `max_bytes`.
fn split(
    group: Group<'_>,
    received_ms: i64,
    max_bytes: usize,
    out: &mut Vec<Record>,
) -> Result<(), serde_json::Error> {
    let topic = topics::for_family(group.family).name;
    let batch = |events| EventBatch {
        schema_version: SCHEMA_VERSION,
        received_ms,
        events,
    };
    // Compact JSON of a batch is exactly the empty batch, plus each event,
    // plus a comma between events.
    let overhead = json_len(&batch(Vec::new()))?;
    let mut chunk_lens = Vec::new();
    let (mut len, mut size) = (0usize, overhead);
    for event in &group.events {
        let add = json_len(event)? + usize::from(len > 0);
        if len > 0 && size + add > max_bytes {
            chunk_lens.push(len);
            (len, size) = (0, overhead);
            size += add - 1;
        } else {
            size += add;
        }
        len += 1;
    }
    chunk_lens.push(len);
    let mut events = group.events.into_iter();
    for len in chunk_lens {
        let chunk: Vec<Event> = events.by_ref().take(len).collect();
        out.push(Record {
            topic,
            key: group.stream_id.clone(),
            payload: serde_json::to_vec(&batch(chunk))?,
            events: len,
        });
    }
    Ok(())
}

/// Length of `value` as compact JSON, without building it.
fn json_len(value: &impl serde::Serialize) -> Result<usize, serde_json::Error> {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value)?;
    Ok(count.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn chat(stream: &str, n: usize) -> String {
        format!(
            r#"{{"event_id":"6f1c8a52-2f43-4a55-9a33-{n:012}","ts":{NOW},"stream_id":"{stream}","type":"chat","event":"message","viewer_id":"v","text":"{}"}}"#,
            "x".repeat(100)
        )
    }

    fn events_of(record: &Record) -> Vec<String> {
        let batch: EventBatch = serde_json::from_slice(&record.payload).unwrap();
        assert_eq!(batch.schema_version, SCHEMA_VERSION);
        assert_eq!(batch.received_ms, NOW);
        batch
            .events
            .iter()
            .map(|e| e.event_id.to_string())
            .collect()
    }

    #[test]
    fn groups_by_topic_and_stream_in_client_order() {
        let stream_start = format!(
            r#"{{"event_id":"6f1c8a52-2f43-4a55-9a33-000000000009","ts":{NOW},"stream_id":"a","type":"stream","event":"start","creator_id":"c"}}"#
        );
        let lines = [
            chat("a", 1),
            chat("b", 2),
            stream_start,
            chat("a", 3),
            "{".into(),
        ];
        let elements: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let prepared = prepare(&elements, NOW, &Limits::default(), 65_536).unwrap();
        assert_eq!(prepared.accepted, 4);
        assert_eq!(prepared.rejected.len(), 1);
        assert_eq!(prepared.rejected[0].index, 4);
        assert_eq!(prepared.rejected[0].rejection.code(), "malformed");
        let shape: Vec<_> = prepared
            .records
            .iter()
            .map(|r| (r.topic, r.key.as_str(), r.events))
            .collect();
        assert_eq!(
            shape,
            [
                ("livepulse.chat.v1", "a", 2),
                ("livepulse.chat.v1", "b", 1),
                ("livepulse.stream.v1", "a", 1)
            ]
        );
        assert_eq!(
            events_of(&prepared.records[0]),
            [
                "6f1c8a52-2f43-4a55-9a33-000000000001",
                "6f1c8a52-2f43-4a55-9a33-000000000003"
            ]
        );
    }

    #[test]
    fn splits_exactly_at_the_record_limit() {
        let lines: Vec<String> = (0..10).map(|n| chat("s", n)).collect();
        let elements: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let whole = prepare(&elements, NOW, &Limits::default(), 1 << 20).unwrap();
        let full = whole.records[0].payload.len();
        // Exactly the size of three events fits three; one byte less fits two.
        let three = prepare(&elements[..3], NOW, &Limits::default(), 1 << 20).unwrap();
        let limit = three.records[0].payload.len();
        let fits = prepare(&elements, NOW, &Limits::default(), limit).unwrap();
        let counts: Vec<usize> = fits.records.iter().map(|r| r.events).collect();
        assert_eq!(counts, [3, 3, 3, 1]);
        assert!(fits.records.iter().all(|r| r.payload.len() <= limit));
        let tighter = prepare(&elements, NOW, &Limits::default(), limit - 1).unwrap();
        let counts: Vec<usize> = tighter.records.iter().map(|r| r.events).collect();
        assert_eq!(counts, [2, 2, 2, 2, 2]);
        let ids: Vec<String> = tighter.records.iter().flat_map(events_of).collect();
        assert_eq!(ids, events_of(&whole.records[0]));
        assert!(full > limit);
        // Too small for even one event: each event still gets its record.
        let tiny = prepare(&elements[..2], NOW, &Limits::default(), 10).unwrap();
        assert_eq!(tiny.records.len(), 2);
    }
}
