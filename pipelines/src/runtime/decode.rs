//! Kafka record values (JSON [`EventBatch`]es) to Arrow record batches.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, StringBuilder, UInt32Builder, UInt64Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use livepulse_contract::arrow::event_schema;
use livepulse_contract::{EventBatch, SCHEMA_VERSION};
use thiserror::Error;

/// Column with the index of the (topic, partition) a row came from.
pub const SOURCE_COLUMN: &str = "_source";
/// Column with the Kafka offset of the record a row came from.
pub const OFFSET_COLUMN: &str = "_offset";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields: Vec<Field> = event_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(SOURCE_COLUMN, DataType::UInt32, false));
    fields.push(Field::new(OFFSET_COLUMN, DataType::Int64, false));
    Arc::new(Schema::new(fields))
});

/// The contract's event schema plus the provenance columns the runtime needs
/// to know which offsets are safe to commit.
pub fn decoded_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Why a record could not be decoded; the record is skipped and counted.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// Not a JSON event batch.
    #[error("record is not an event batch: {0}")]
    Json(#[from] serde_json::Error),
    /// A contract version this runtime does not read.
    #[error("record has schema_version {0}, this runtime reads {SCHEMA_VERSION}")]
    Version(u16),
    /// An event lacks `type` or `event` (only possible from producers that
    /// bypass the collector).
    #[error("event {0} lacks `type` or `event`")]
    Untyped(String),
}

/// Accumulates decoded records column by column; [`finish`](Self::finish)
/// yields one batch in [`decoded_schema`] and starts over.
///
/// ```
/// use livepulse_pipelines::runtime::decode::EventDecoder;
///
/// let record = br#"{"schema_version":1,"received_ms":5,"events":[{"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10",
///   "ts":1,"stream_id":"s1","type":"chat","event":"like","viewer_id":"v"}]}"#;
/// let mut decoder = EventDecoder::default();
/// assert_eq!(decoder.append(record, 0, 42).unwrap(), 1);
/// assert_eq!(decoder.finish().unwrap().num_rows(), 1);
/// ```
#[derive(Default)]
pub struct EventDecoder {
    event_id: StringBuilder,
    ts: Int64Builder,
    received_ms: Int64Builder,
    stream_id: StringBuilder,
    event_type: StringBuilder,
    event: StringBuilder,
    session_id: StringBuilder,
    viewer_id: StringBuilder,
    device: StringBuilder,
    player: StringBuilder,
    cdn: StringBuilder,
    region: StringBuilder,
    startup_ms: UInt32Builder,
    bitrate_kbps: UInt32Builder,
    buffer_ms: UInt32Builder,
    rendition: StringBuilder,
    dropped_frames: UInt32Builder,
    played_ms: UInt32Builder,
    stall_ms: UInt32Builder,
    code: StringBuilder,
    fatal: BooleanBuilder,
    text: StringBuilder,
    gift_id: StringBuilder,
    count: UInt32Builder,
    value_cents: UInt64Builder,
    creator_id: StringBuilder,
    title: StringBuilder,
    category: StringBuilder,
    source: UInt32Builder,
    offset: Int64Builder,
    rows: usize,
}

impl EventDecoder {
    /// Decodes one record value, tagging its rows with `source` and `offset`.
    /// Returns the number of events appended; on error nothing is appended.
    pub fn append(&mut self, value: &[u8], source: u32, offset: i64) -> Result<usize, DecodeError> {
        let batch: EventBatch = serde_json::from_slice(value)?;
        if batch.schema_version != SCHEMA_VERSION {
            return Err(DecodeError::Version(batch.schema_version));
        }
        if let Some(e) = batch
            .events
            .iter()
            .find(|e| e.family.is_none() || e.event.is_none())
        {
            return Err(DecodeError::Untyped(e.event_id.to_string()));
        }
        for e in &batch.events {
            let (Some(family), Some(kind)) = (e.family, e.event) else {
                unreachable!("checked above")
            };
            self.event_id.append_value(&e.event_id);
            self.ts.append_value(e.ts);
            self.received_ms.append_value(batch.received_ms);
            self.stream_id.append_value(&e.stream_id);
            self.event_type.append_value(family.as_str());
            self.event.append_value(kind.as_str());
            self.session_id.append_option(e.session_id.as_deref());
            self.viewer_id.append_option(e.viewer_id.as_deref());
            self.device.append_option(e.device.as_deref());
            self.player.append_option(e.player.as_deref());
            self.cdn.append_option(e.cdn.as_deref());
            self.region.append_option(e.region.as_deref());
            self.startup_ms.append_option(e.startup_ms);
            self.bitrate_kbps.append_option(e.bitrate_kbps);
            self.buffer_ms.append_option(e.buffer_ms);
            self.rendition.append_option(e.rendition.as_deref());
            self.dropped_frames.append_option(e.dropped_frames);
            self.played_ms.append_option(e.played_ms);
            self.stall_ms.append_option(e.stall_ms);
            self.code.append_option(e.code.as_deref());
            self.fatal.append_option(e.fatal);
            self.text.append_option(e.text.as_deref());
            self.gift_id.append_option(e.gift_id.as_deref());
            self.count.append_option(e.count);
            self.value_cents.append_option(e.value_cents);
            self.creator_id.append_option(e.creator_id.as_deref());
            self.title.append_option(e.title.as_deref());
            self.category.append_option(e.category.as_deref());
            self.source.append_value(source);
            self.offset.append_value(offset);
        }
        self.rows += batch.events.len();
        Ok(batch.events.len())
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
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.received_ms.finish()),
            Arc::new(self.stream_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.event.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.viewer_id.finish()),
            Arc::new(self.device.finish()),
            Arc::new(self.player.finish()),
            Arc::new(self.cdn.finish()),
            Arc::new(self.region.finish()),
            Arc::new(self.startup_ms.finish()),
            Arc::new(self.bitrate_kbps.finish()),
            Arc::new(self.buffer_ms.finish()),
            Arc::new(self.rendition.finish()),
            Arc::new(self.dropped_frames.finish()),
            Arc::new(self.played_ms.finish()),
            Arc::new(self.stall_ms.finish()),
            Arc::new(self.code.finish()),
            Arc::new(self.fatal.finish()),
            Arc::new(self.text.finish()),
            Arc::new(self.gift_id.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.value_cents.finish()),
            Arc::new(self.creator_id.finish()),
            Arc::new(self.title.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.offset.finish()),
        ];
        RecordBatch::try_new(decoded_schema(), columns)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::UInt32Type;

    use super::*;

    const RECORD: &[u8] = br#"{"schema_version":1,"received_ms":1000,"events":[
        {"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","ts":990,"stream_id":"s1","type":"player","event":"heartbeat",
         "session_id":"a","viewer_id":"v","bitrate_kbps":3000,"buffer_ms":9000,"played_ms":10000,"rendition":"720p"},
        {"event_id":"7f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","ts":995,"stream_id":"s1","type":"chat","event":"gift",
         "viewer_id":"v","gift_id":"rose","count":3,"value_cents":300}]}"#;

    #[test]
    fn decodes_every_field_into_its_column() {
        let mut decoder = EventDecoder::default();
        assert_eq!(decoder.append(RECORD, 7, 42).unwrap(), 2);
        let batch = decoder.finish().unwrap();
        assert_eq!(batch.schema(), decoded_schema());
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(
            col("ts").as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
            &Int64Array::from(vec![990, 995])
        );
        assert_eq!(col("event_type").as_string::<i32>().value(1), "chat");
        assert_eq!(
            col("bitrate_kbps").as_primitive::<UInt32Type>().value(0),
            3000
        );
        assert!(col("bitrate_kbps").is_null(1));
        assert_eq!(col("count").as_primitive::<UInt32Type>().value(1), 3);
        assert_eq!(
            col("received_ms")
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .value(1),
            1000
        );
        assert_eq!(col(SOURCE_COLUMN).as_primitive::<UInt32Type>().value(1), 7);
        assert!(decoder.is_empty());
    }

    #[test]
    fn rejects_foreign_versions_and_garbage_without_appending() {
        let mut decoder = EventDecoder::default();
        let v2 = br#"{"schema_version":2,"received_ms":1,"events":[]}"#;
        assert_eq!(
            decoder.append(v2, 0, 0).unwrap_err().to_string(),
            "record has schema_version 2, this runtime reads 1"
        );
        assert!(decoder.append(b"not json", 0, 1).is_err());
        assert!(decoder.is_empty());
    }
}
