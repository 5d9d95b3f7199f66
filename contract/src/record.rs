//! Kafka record values: how rows travel between producers and pipelines.
//!
//! Two encodings, told apart by their first bytes, are read on every topic
//! a job consumes:
//!
//! * **Columnar**, what livepulse's own producers write: [`MAGIC`], then an
//!   Arrow IPC stream of one batch in the topic's schema
//!   ([`Payload::schema`]). A record carries many rows of one partition
//!   ([`topics::partition_for`]), so the broker's per-record cost is paid
//!   once per thousands of events, and the producer compresses it (lz4).
//!   Readers take the columns they know by name: a column a reader does not
//!   know is ignored, a nullable column a writer did not send reads as null.
//! * **JSON**, for producers that are not livepulse: an [`EventBatch`] on the
//!   event topics, a [`PlaybackBatch`] on the playback request topic.
//!
//! ```
//! use livepulse_contract::arrow::EventColumns;
//! use livepulse_contract::record::{self, Payload};
//! use livepulse_contract::Event;
//!
//! let event: Event = serde_json::from_str(r#"{"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10",
//!   "ts":1,"stream_id":"s1","type":"chat","event":"like","viewer_id":"v"}"#).unwrap();
//! let mut columns = EventColumns::default();
//! columns.push(&event, 5).unwrap();
//! let value = record::encode(&columns.finish().unwrap()).unwrap();
//! assert!(value.starts_with(record::MAGIC));
//! assert_eq!(record::decode(Payload::Events, &value).unwrap().num_rows(), 1);
//! ```
//!
//! [`topics::partition_for`]: crate::topics::partition_for

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, new_null_array};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, SchemaRef};
use arrow_select::concat::concat_batches;
use thiserror::Error;

use crate::arrow::events::UntypedEvent;
use crate::arrow::{EventColumns, RequestColumns, event_schema, request_schema};
use crate::playback::PlaybackBatch;
use crate::{EventBatch, SCHEMA_VERSION};

/// First bytes of a columnar record value.
pub const MAGIC: &[u8; 4] = b"LPA1";

/// What a topic's records carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Payload {
    /// Events ([`event_schema`]).
    Events,
    /// The origin's playback requests ([`request_schema`]).
    PlaybackRequests,
    /// Records a pipeline could not use, as they were, with a reason
    /// header; not a job input.
    DeadLetters,
}

impl Payload {
    /// The schema records of this payload decode into; `None` for dead letters.
    pub fn schema(self) -> Option<SchemaRef> {
        match self {
            Self::Events => Some(event_schema()),
            Self::PlaybackRequests => Some(request_schema()),
            Self::DeadLetters => None,
        }
    }
}

/// Why a record value could not be decoded.
#[derive(Debug, Error)]
pub enum RecordError {
    /// A JSON value that is not a batch of this topic.
    #[error("record is not a JSON batch: {0}")]
    Json(#[from] serde_json::Error),
    /// A contract version this reader does not read.
    #[error("record has schema_version {0}, this reader reads {SCHEMA_VERSION}")]
    Version(u16),
    /// An event without `type` or `event`.
    #[error(transparent)]
    Untyped(#[from] UntypedEvent),
    /// A columnar value whose Arrow IPC stream does not read.
    #[error("columnar record: {0}")]
    Arrow(#[from] ArrowError),
    /// A columnar value without a column its schema requires.
    #[error("columnar record lacks the required column `{0}`")]
    MissingColumn(String),
    /// A columnar value with a column of another type.
    #[error("columnar record has `{column}` as {found}, expected {expected}")]
    ColumnType {
        /// The column.
        column: String,
        /// Its type in the record.
        found: String,
        /// Its type in the schema.
        expected: String,
    },
    /// A columnar value with nulls in a column that allows none.
    #[error("columnar record has nulls in the required column `{0}`")]
    Nulls(String),
    /// The topic's records are not rows.
    #[error("dead letters are not decoded")]
    NotRows,
}

/// A columnar record value holding `batch`.
pub fn encode(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let mut out = MAGIC.to_vec();
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// Decodes a record value of a topic carrying `payload`, in either
/// encoding, into one batch of [`Payload::schema`].
pub fn decode(payload: Payload, value: &[u8]) -> Result<RecordBatch, RecordError> {
    let schema = payload.schema().ok_or(RecordError::NotRows)?;
    if let Some(ipc) = value.strip_prefix(MAGIC.as_slice()) {
        return decode_columnar(&schema, ipc);
    }
    match payload {
        Payload::Events => {
            let batch: EventBatch = serde_json::from_slice(value)?;
            check_version(batch.schema_version)?;
            let mut columns = EventColumns::default();
            for event in &batch.events {
                columns.push(event, batch.received_ms)?;
            }
            Ok(columns.finish()?)
        }
        Payload::PlaybackRequests => {
            let batch: PlaybackBatch = serde_json::from_slice(value)?;
            check_version(batch.schema_version)?;
            let mut columns = RequestColumns::default();
            batch.requests.iter().for_each(|r| columns.push(r));
            Ok(columns.finish()?)
        }
        Payload::DeadLetters => Err(RecordError::NotRows),
    }
}

fn check_version(version: u16) -> Result<(), RecordError> {
    if version == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(RecordError::Version(version))
    }
}

/// Reads an Arrow IPC stream and takes `schema`'s columns from it by name.
fn decode_columnar(schema: &SchemaRef, ipc: &[u8]) -> Result<RecordBatch, RecordError> {
    let reader = StreamReader::try_new(Cursor::new(ipc), None)?;
    let written = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let batch = match batches.as_slice() {
        [one] => one.clone(),
        _ => concat_batches(&written, &batches)?,
    };
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() != field.data_type() => {
                Err(RecordError::ColumnType {
                    column: field.name().clone(),
                    found: column.data_type().to_string(),
                    expected: field.data_type().to_string(),
                })
            }
            Some(column) if !field.is_nullable() && column.null_count() > 0 => {
                Err(RecordError::Nulls(field.name().clone()))
            }
            Some(column) => Ok(Arc::clone(column)),
            None if field.is_nullable() => Ok(new_null_array(field.data_type(), rows)),
            None => Err(RecordError::MissingColumn(field.name().clone())),
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use arrow_array::StringArray;
    use arrow_array::cast::AsArray;
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    const EVENTS: &str = r#"{"schema_version":1,"received_ms":1000,"events":[
        {"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","ts":990,"stream_id":"s1","type":"player","event":"heartbeat",
         "session_id":"a","viewer_id":"v","bitrate_kbps":3000,"buffer_ms":9000,"played_ms":10000,"rendition":"720p"},
        {"event_id":"7f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","ts":995,"stream_id":"s1","type":"chat","event":"gift",
         "viewer_id":"v","gift_id":"rose","count":3,"value_cents":300}]}"#;

    #[test]
    fn json_and_columnar_values_decode_to_the_same_batch() {
        let from_json = decode(Payload::Events, EVENTS.as_bytes()).unwrap();
        assert_eq!(from_json.num_rows(), 2);
        let columnar = encode(&from_json).unwrap();
        assert_eq!(decode(Payload::Events, &columnar).unwrap(), from_json);
    }

    #[test]
    fn columnar_values_are_read_by_column_name() {
        // A writer that knows fewer columns, in another order, plus one this
        // reader does not know.
        let schema = Arc::new(Schema::new(vec![
            Field::new("stream_id", DataType::Utf8, false),
            Field::new("future_column", DataType::Utf8, true),
            Field::new("event_id", DataType::Utf8, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("received_ms", DataType::Int64, false),
            Field::new("event_type", DataType::Utf8, false),
            Field::new("event", DataType::Utf8, false),
        ]));
        let text = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
        let int = |v: i64| Arc::new(arrow_array::Int64Array::from(vec![v])) as ArrayRef;
        let batch = RecordBatch::try_new(
            schema,
            vec![
                text("s1"),
                text("?"),
                text("6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10"),
                int(5),
                int(6),
                text("chat"),
                text("like"),
            ],
        )
        .unwrap();
        let read = decode(Payload::Events, &encode(&batch).unwrap()).unwrap();
        assert_eq!(read.schema(), event_schema());
        assert_eq!(
            read.column_by_name("stream_id")
                .unwrap()
                .as_string::<i32>()
                .value(0),
            "s1"
        );
        assert!(read.column_by_name("viewer_id").unwrap().is_null(0));

        let without_ts = batch.project(&[0, 2, 4, 5, 6]).unwrap();
        assert_eq!(
            decode(Payload::Events, &encode(&without_ts).unwrap())
                .unwrap_err()
                .to_string(),
            "columnar record lacks the required column `ts`"
        );
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let err = |payload, value: &[u8]| decode(payload, value).unwrap_err().to_string();
        assert!(err(Payload::Events, b"not json").starts_with("record is not a JSON batch"));
        assert_eq!(
            err(
                Payload::Events,
                br#"{"schema_version":2,"received_ms":1,"events":[]}"#
            ),
            "record has schema_version 2, this reader reads 1"
        );
        assert!(err(Payload::Events, b"LPA1garbage").starts_with("columnar record: "));
        let requests = decode(Payload::PlaybackRequests, EVENTS.as_bytes());
        assert!(requests.is_err());
        assert_eq!(
            err(Payload::DeadLetters, b"{}"),
            "dead letters are not decoded"
        );
    }
}
