//! Kafka record values to Arrow batches in a job's input schema.
//!
//! A job reads topics whose records decode into different schemas (events,
//! playback requests; see [`livepulse_contract::record`]). Its input schema
//! is their union by column name, so its SQL sees one table: a column one
//! topic lacks is null in that topic's rows. Two provenance columns follow,
//! which the runtime needs for watermarks and safe commits.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, UInt32Array, new_null_array};
use datafusion::arrow::compute::{concat_batches, max};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use livepulse_contract::arrow::col;
use livepulse_contract::record::{self, Payload, RecordError};
use livepulse_contract::topics::Topic;
use thiserror::Error;

/// Column with the index of the (topic, partition) a row came from.
pub const SOURCE_COLUMN: &str = "_source";
/// Column with the Kafka offset of the record a row came from.
pub const OFFSET_COLUMN: &str = "_offset";

/// Topics whose schemas cannot be one table.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InputError {
    /// A topic whose records are not rows.
    #[error("topic `{0}` does not carry rows a job can read")]
    NotRows(&'static str),
    /// One column name with two types.
    #[error("column `{column}` is {first} in one topic and {second} in `{topic}`")]
    Conflict {
        /// The column.
        column: String,
        /// Its type in an earlier topic.
        first: DataType,
        /// Its type in `topic`.
        second: DataType,
        /// The topic.
        topic: &'static str,
    },
}

/// The input schema of a job reading `topics`: the union of their schemas
/// by column name, in first-seen order, then [`SOURCE_COLUMN`] and
/// [`OFFSET_COLUMN`]. A column is nullable unless every topic has it as
/// non-nullable.
///
/// ```
/// use livepulse_contract::topics;
/// use livepulse_pipelines::runtime::decode::input_schema;
///
/// let schema = input_schema(&[topics::PLAYER_EVENTS, topics::PLAYBACK_REQUESTS]).unwrap();
/// assert!(!schema.field_with_name("stream_id").unwrap().is_nullable());
/// assert!(schema.field_with_name("viewer_id").unwrap().is_nullable());
/// assert!(schema.field_with_name("cmcd_br").unwrap().is_nullable());
/// ```
pub fn input_schema(topics: &[Topic]) -> Result<SchemaRef, InputError> {
    let mut fields: Vec<Field> = Vec::new();
    let mut payloads: Vec<Payload> = Vec::new();
    for topic in topics {
        let schema = topic
            .payload
            .schema()
            .ok_or(InputError::NotRows(topic.name))?;
        if payloads.contains(&topic.payload) {
            continue;
        }
        for field in &mut fields {
            match schema.field_with_name(field.name()) {
                Ok(other) if other.data_type() != field.data_type() => {
                    return Err(InputError::Conflict {
                        column: field.name().clone(),
                        first: field.data_type().clone(),
                        second: other.data_type().clone(),
                        topic: topic.name,
                    });
                }
                Ok(other) if other.is_nullable() => field.set_nullable(true),
                Ok(_) => {}
                Err(_) => field.set_nullable(true),
            }
        }
        let first = payloads.is_empty();
        for field in schema.fields() {
            if !fields.iter().any(|f| f.name() == field.name()) {
                fields.push(
                    field
                        .as_ref()
                        .clone()
                        .with_nullable(!first || field.is_nullable()),
                );
            }
        }
        payloads.push(topic.payload);
    }
    fields.push(Field::new(SOURCE_COLUMN, DataType::UInt32, false));
    fields.push(Field::new(OFFSET_COLUMN, DataType::Int64, false));
    Ok(Arc::new(Schema::new(fields)))
}

/// Accumulates decoded records; [`finish`](Self::finish) yields one batch in
/// the job's input schema and starts over.
///
/// ```
/// use livepulse_contract::record::Payload;
/// use livepulse_contract::topics;
/// use livepulse_pipelines::runtime::decode::{InputDecoder, input_schema};
///
/// let record = br#"{"schema_version":1,"received_ms":5,"events":[{"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10",
///   "ts":1,"stream_id":"s1","type":"chat","event":"like","viewer_id":"v"}]}"#;
/// let mut decoder = InputDecoder::new(input_schema(&[topics::CHAT_EVENTS]).unwrap());
/// assert_eq!(decoder.append(Payload::Events, record, 0, 42).unwrap(), 1);
/// assert_eq!(decoder.finish().unwrap().num_rows(), 1);
/// ```
pub struct InputDecoder {
    schema: SchemaRef,
    pieces: Vec<RecordBatch>,
    rows: usize,
    latest_ts: Option<i64>,
}

impl InputDecoder {
    /// A decoder into `schema` (from [`input_schema`]).
    pub fn new(schema: SchemaRef) -> Self {
        Self {
            schema,
            pieces: Vec::new(),
            rows: 0,
            latest_ts: None,
        }
    }

    /// The job's input schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Decodes one record value of a topic carrying `payload`, tagging its
    /// rows with `source` and `offset`. Returns the number of rows appended;
    /// on error nothing is appended.
    pub fn append(
        &mut self,
        payload: Payload,
        value: &[u8],
        source: u32,
        offset: i64,
    ) -> Result<usize, RecordError> {
        self.latest_ts = None;
        let batch = record::decode(payload, value)?;
        let rows = batch.num_rows();
        self.latest_ts = batch
            .column_by_name(col::TS)
            .and_then(|ts| ts.as_primitive_opt::<Int64Type>())
            .and_then(max);
        if rows == 0 {
            return Ok(0);
        }
        let columns = self
            .schema
            .fields()
            .iter()
            .map(|field| match field.name().as_str() {
                SOURCE_COLUMN => Arc::new(UInt32Array::from(vec![source; rows])) as ArrayRef,
                OFFSET_COLUMN => Arc::new(Int64Array::from(vec![offset; rows])) as ArrayRef,
                name => batch
                    .column_by_name(name)
                    .cloned()
                    .unwrap_or_else(|| new_null_array(field.data_type(), rows)),
            })
            .collect();
        self.pieces
            .push(RecordBatch::try_new(self.schema(), columns)?);
        self.rows += rows;
        Ok(rows)
    }

    /// The latest event time in the record last given to
    /// [`append`](Self::append); `None` if it had no rows or failed.
    pub fn latest_ts(&self) -> Option<i64> {
        self.latest_ts
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether nothing was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The rows appended so far, as one batch; the decoder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        let pieces = std::mem::take(&mut self.pieces);
        match pieces.as_slice() {
            [one] => Ok(one.clone()),
            _ => concat_batches(&self.schema, &pieces),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Int64Type, UInt32Type};
    use livepulse_contract::topics;

    use super::*;

    /// A decoder for the engagement job's topics.
    pub(crate) fn event_decoder() -> InputDecoder {
        InputDecoder::new(input_schema(&[topics::PLAYER_EVENTS, topics::CHAT_EVENTS]).unwrap())
    }

    const RECORD: &[u8] = br#"{"schema_version":1,"received_ms":1000,"events":[
        {"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","ts":990,"stream_id":"s1","type":"player","event":"heartbeat",
         "session_id":"a","viewer_id":"v","bitrate_kbps":3000,"buffer_ms":9000,"played_ms":10000,"rendition":"720p"},
        {"event_id":"7f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","ts":995,"stream_id":"s1","type":"chat","event":"gift",
         "viewer_id":"v","gift_id":"rose","count":3,"value_cents":300}]}"#;

    const REQUESTS: &[u8] = br#"{"schema_version":1,"requests":[{"request_id":"8f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10",
        "received_ms":2000,"stream_id":"s1","rendition":"720p","object":"seg4.m4s","object_kind":"segment",
        "status":200,"bytes_sent":4,"complete":true,"client_cohort":"203.0.113.0/24","cmcd":{"encoded_bitrate_kbps":986}}]}"#;

    #[test]
    fn rows_of_every_topic_land_in_one_schema_with_their_provenance() {
        let schema = input_schema(&[topics::PLAYER_EVENTS, topics::PLAYBACK_REQUESTS]).unwrap();
        let mut decoder = InputDecoder::new(schema.clone());
        assert_eq!(decoder.append(Payload::Events, RECORD, 7, 42).unwrap(), 2);
        assert_eq!(
            decoder
                .append(Payload::PlaybackRequests, REQUESTS, 3, 9)
                .unwrap(),
            1
        );
        assert_eq!(decoder.len(), 3);
        let batch = decoder.finish().unwrap();
        assert!(decoder.is_empty());
        assert_eq!(batch.schema(), schema);
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(
            col("ts").as_primitive::<Int64Type>().values().to_vec(),
            vec![990, 995, 2000]
        );
        assert_eq!(col("event_type").as_string::<i32>().value(2), "request");
        assert!(col("cmcd_br").is_null(0) && !col("cmcd_br").is_null(2));
        assert!(col("viewer_id").is_null(2));
        assert_eq!(
            col(SOURCE_COLUMN)
                .as_primitive::<UInt32Type>()
                .values()
                .to_vec(),
            vec![7, 7, 3]
        );
        assert_eq!(col(OFFSET_COLUMN).as_primitive::<Int64Type>().value(2), 9);
    }

    #[test]
    fn undecodable_records_append_nothing() {
        let mut decoder = event_decoder();
        let v2 = br#"{"schema_version":2,"received_ms":1,"events":[]}"#;
        assert_eq!(
            decoder
                .append(Payload::Events, v2, 0, 0)
                .unwrap_err()
                .to_string(),
            "record has schema_version 2, this reader reads 1"
        );
        assert!(decoder.append(Payload::Events, b"not json", 0, 1).is_err());
        assert!(decoder.is_empty());
        assert_eq!(
            input_schema(&[topics::DEAD_LETTER]).unwrap_err(),
            InputError::NotRows("livepulse.dead-letter.v1")
        );
    }
}
