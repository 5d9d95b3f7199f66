//! The event schema and [`EventColumns`], which builds batches of it from
//! [`Event`]s.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use super::col;
use crate::Event;

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let uint32 = |name: &str| Field::new(name, DataType::UInt32, true);
    Arc::new(Schema::new(vec![
        Field::new(col::EVENT_ID, DataType::Utf8, false),
        Field::new(col::TS, DataType::Int64, false),
        Field::new(col::RECEIVED_MS, DataType::Int64, false),
        Field::new(col::STREAM_ID, DataType::Utf8, false),
        Field::new(col::EVENT_TYPE, DataType::Utf8, false),
        Field::new(col::EVENT, DataType::Utf8, false),
        text("session_id"),
        text("viewer_id"),
        text("device"),
        text("player"),
        text("cdn"),
        text("region"),
        uint32("startup_ms"),
        uint32("bitrate_kbps"),
        uint32("buffer_ms"),
        text("rendition"),
        uint32("dropped_frames"),
        uint32("played_ms"),
        uint32("stall_ms"),
        text("code"),
        Field::new("fatal", DataType::Boolean, true),
        text("text"),
        text("gift_id"),
        uint32("count"),
        Field::new("value_cents", DataType::UInt64, true),
        text("creator_id"),
        text("title"),
        text("category"),
        uint32("previous_bitrate_kbps"),
        uint32("latency_ms"),
        uint32("upscale_pct"),
        uint32("segment_ms"),
        Field::new("frame_rate", DataType::Float64, true),
        uint32("keyframe_interval_ms"),
    ]))
});

/// The schema of a decoded event batch.
///
/// ```
/// let schema = livepulse_contract::arrow::event_schema();
/// assert_eq!(schema.field(0).name(), "event_id");
/// ```
pub fn event_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Builds event batches in [`event_schema`], column by column;
/// [`finish`](Self::finish) yields the batch and starts over.
///
/// ```
/// use livepulse_contract::Event;
/// use livepulse_contract::arrow::EventColumns;
///
/// let event: Event = serde_json::from_str(r#"{"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10",
///   "ts":1,"stream_id":"s1","type":"chat","event":"like","viewer_id":"v"}"#).unwrap();
/// let mut columns = EventColumns::default();
/// columns.push(&event, 5).unwrap();
/// assert_eq!(columns.finish().unwrap().num_rows(), 1);
/// ```
#[derive(Default)]
pub struct EventColumns {
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
    previous_bitrate_kbps: UInt32Builder,
    latency_ms: UInt32Builder,
    upscale_pct: UInt32Builder,
    segment_ms: UInt32Builder,
    frame_rate: Float64Builder,
    keyframe_interval_ms: UInt32Builder,
    rows: usize,
    text_bytes: usize,
}

/// An event that cannot be a row: it lacks `type` or `event` (only possible
/// from producers that bypass the collector's validation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {0} lacks `type` or `event`")]
pub struct UntypedEvent(pub String);

impl EventColumns {
    /// Appends `event`, received by the collector at `received_ms`.
    pub fn push(&mut self, e: &Event<'_>, received_ms: i64) -> Result<(), UntypedEvent> {
        let (Some(family), Some(kind)) = (e.family, e.event) else {
            return Err(UntypedEvent(e.event_id.to_string()));
        };
        let mut text = |b: &mut StringBuilder, v: Option<&str>| {
            self.text_bytes += v.map_or(0, str::len);
            b.append_option(v);
        };
        text(&mut self.event_id, Some(&*e.event_id));
        text(&mut self.stream_id, Some(&*e.stream_id));
        text(&mut self.event_type, Some(family.as_str()));
        text(&mut self.event, Some(kind.as_str()));
        text(&mut self.session_id, e.session_id.as_deref());
        text(&mut self.viewer_id, e.viewer_id.as_deref());
        text(&mut self.device, e.device.as_deref());
        text(&mut self.player, e.player.as_deref());
        text(&mut self.cdn, e.cdn.as_deref());
        text(&mut self.region, e.region.as_deref());
        text(&mut self.rendition, e.rendition.as_deref());
        text(&mut self.code, e.code.as_deref());
        text(&mut self.text, e.text.as_deref());
        text(&mut self.gift_id, e.gift_id.as_deref());
        text(&mut self.creator_id, e.creator_id.as_deref());
        text(&mut self.title, e.title.as_deref());
        text(&mut self.category, e.category.as_deref());
        self.ts.append_value(e.ts);
        self.received_ms.append_value(received_ms);
        self.startup_ms.append_option(e.startup_ms);
        self.bitrate_kbps.append_option(e.bitrate_kbps);
        self.buffer_ms.append_option(e.buffer_ms);
        self.dropped_frames.append_option(e.dropped_frames);
        self.played_ms.append_option(e.played_ms);
        self.stall_ms.append_option(e.stall_ms);
        self.fatal.append_option(e.fatal);
        self.count.append_option(e.count);
        self.value_cents.append_option(e.value_cents);
        self.previous_bitrate_kbps
            .append_option(e.previous_bitrate_kbps);
        self.latency_ms.append_option(e.latency_ms);
        self.upscale_pct.append_option(e.upscale_pct);
        self.segment_ms.append_option(e.segment_ms);
        self.frame_rate.append_option(e.frame_rate);
        self.keyframe_interval_ms
            .append_option(e.keyframe_interval_ms);
        self.rows += 1;
        Ok(())
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether nothing was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The Arrow bytes the rows appended so far take, about: their text plus
    /// each row's fixed-width values and offsets.
    pub fn size_estimate(&self) -> usize {
        const FIXED_ROW_BYTES: usize = 17 * 4 + 3 * 8 + 13 * 4 + 8;
        self.text_bytes + self.rows * FIXED_ROW_BYTES
    }

    /// The rows appended so far, as one batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        self.text_bytes = 0;
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
            Arc::new(self.previous_bitrate_kbps.finish()),
            Arc::new(self.latency_ms.finish()),
            Arc::new(self.upscale_pct.finish()),
            Arc::new(self.segment_ms.finish()),
            Arc::new(self.frame_rate.finish()),
            Arc::new(self.keyframe_interval_ms.finish()),
        ];
        RecordBatch::try_new(event_schema(), columns)
    }
}

/// The events of a batch in [`event_schema`] (as [`EventColumns`] built
/// it, or a columnar record held), each with its receive time: the reverse
/// of [`EventColumns::push`], for tools and tests that read records back.
pub fn events_of(batch: &RecordBatch) -> Result<Vec<(i64, Event<'static>)>, ArrowError> {
    let c = Reader(batch);
    let (ts, received) = (c.int64(col::TS)?, c.int64(col::RECEIVED_MS)?);
    let [ids, streams, families, kinds] =
        [col::EVENT_ID, col::STREAM_ID, col::EVENT_TYPE, col::EVENT].map(|n| c.required_text(n));
    let (ids, streams, families, kinds) = (ids?, streams?, families?, kinds?);
    let [
        session,
        viewer,
        device,
        player,
        cdn,
        region,
        rendition,
        code,
        chat,
        gift,
        creator,
    ] = [
        "session_id",
        "viewer_id",
        "device",
        "player",
        "cdn",
        "region",
        "rendition",
        "code",
        "text",
        "gift_id",
        "creator_id",
    ]
    .map(|n| c.text(n));
    let (session, viewer, device, player, cdn) = (session?, viewer?, device?, player?, cdn?);
    let (region, rendition, code, chat, gift, creator) =
        (region?, rendition?, code?, chat?, gift?, creator?);
    let (title, category) = (c.text("title")?, c.text("category")?);
    let [
        startup,
        bitrate,
        buffer,
        dropped,
        played,
        stall,
        count,
        previous,
        latency,
        upscale,
    ] = [
        "startup_ms",
        "bitrate_kbps",
        "buffer_ms",
        "dropped_frames",
        "played_ms",
        "stall_ms",
        "count",
        "previous_bitrate_kbps",
        "latency_ms",
        "upscale_pct",
    ]
    .map(|n| c.uint32(n));
    let (startup, bitrate, buffer, dropped, played) =
        (startup?, bitrate?, buffer?, dropped?, played?);
    let (stall, count, previous, latency, upscale) =
        (stall?, count?, previous?, latency?, upscale?);
    let (segment, keyframes) = (c.uint32("segment_ms")?, c.uint32("keyframe_interval_ms")?);
    let fatal = c.boolean("fatal")?;
    let value = c.column("value_cents", |a| {
        a.as_primitive_opt::<UInt64Type>().cloned()
    })?;
    let frame_rate = c.column("frame_rate", |a| {
        a.as_primitive_opt::<Float64Type>().cloned()
    })?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let owned = |v: &Option<StringArray>| {
            v.as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| Cow::Owned(a.value(i).to_owned()))
        };
        let number =
            |v: &Option<UInt32Array>| v.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i));
        let event = Event {
            schema_version: None,
            event_id: Cow::Owned(ids.value(i).to_owned()),
            ts: ts.value(i),
            stream_id: Cow::Owned(streams.value(i).to_owned()),
            family: Some(parse("type", families.value(i))?),
            event: Some(parse("event", kinds.value(i))?),
            session_id: owned(&session),
            viewer_id: owned(&viewer),
            device: owned(&device),
            player: owned(&player),
            cdn: owned(&cdn),
            region: owned(&region),
            startup_ms: number(&startup),
            bitrate_kbps: number(&bitrate),
            previous_bitrate_kbps: number(&previous),
            buffer_ms: number(&buffer),
            rendition: owned(&rendition),
            dropped_frames: number(&dropped),
            played_ms: number(&played),
            stall_ms: number(&stall),
            latency_ms: number(&latency),
            upscale_pct: number(&upscale),
            code: owned(&code),
            fatal: fatal.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i)),
            text: owned(&chat),
            gift_id: owned(&gift),
            count: number(&count),
            value_cents: value.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i)),
            creator_id: owned(&creator),
            title: owned(&title),
            category: owned(&category),
            segment_ms: number(&segment),
            frame_rate: frame_rate
                .as_ref()
                .filter(|a| a.is_valid(i))
                .map(|a| a.value(i)),
            keyframe_interval_ms: number(&keyframes),
        };
        out.push((received.value(i), event));
    }
    Ok(out)
}

/// A wire name (`"player"`, `"heartbeat"`) as its enum.
fn parse<T: serde::de::DeserializeOwned>(what: &str, name: &str) -> Result<T, ArrowError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| ArrowError::InvalidArgumentError(format!("unknown {what} `{name}`")))
}

/// Typed columns of an event batch by name; absent columns read as null.
struct Reader<'a>(&'a RecordBatch);

impl Reader<'_> {
    fn column<T>(
        &self,
        name: &str,
        cast: impl Fn(&ArrayRef) -> Option<T>,
    ) -> Result<Option<T>, ArrowError> {
        match self.0.column_by_name(name) {
            None => Ok(None),
            Some(a) => cast(a).map(Some).ok_or_else(|| {
                ArrowError::SchemaError(format!("column `{name}` has type {}", a.data_type()))
            }),
        }
    }

    fn text(&self, name: &str) -> Result<Option<StringArray>, ArrowError> {
        self.column(name, |a| a.as_string_opt::<i32>().cloned())
    }

    fn required_text(&self, name: &str) -> Result<StringArray, ArrowError> {
        self.text(name)?
            .ok_or_else(|| ArrowError::SchemaError(format!("column `{name}` is missing")))
    }

    fn uint32(&self, name: &str) -> Result<Option<UInt32Array>, ArrowError> {
        self.column(name, |a| a.as_primitive_opt::<UInt32Type>().cloned())
    }

    fn boolean(&self, name: &str) -> Result<Option<BooleanArray>, ArrowError> {
        self.column(name, |a| a.as_boolean_opt().cloned())
    }

    fn int64(&self, name: &str) -> Result<Int64Array, ArrowError> {
        self.column(name, |a| a.as_primitive_opt::<Int64Type>().cloned())?
            .ok_or_else(|| ArrowError::SchemaError(format!("column `{name}` is missing")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_column_and_counts_its_bytes() {
        let health: Event = serde_json::from_str(
            r#"{"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","ts":990,"stream_id":"s1",
            "type":"stream","event":"health","creator_id":"c","segment_ms":1000,"bitrate_kbps":2100,
            "frame_rate":29.97,"keyframe_interval_ms":1000,"rendition":"720p"}"#,
        )
        .unwrap();
        let mut columns = EventColumns::default();
        columns.push(&health, 1_000).unwrap();
        assert_eq!(columns.len(), 1);
        assert!(columns.size_estimate() > 36 + 2 + 6 + 6);
        let batch = columns.finish().unwrap();
        assert!(columns.is_empty() && columns.size_estimate() == 0);
        let col = |name: &str| batch.column_by_name(name).unwrap().clone();
        assert_eq!(col("ts").as_primitive::<Int64Type>().value(0), 990);
        assert_eq!(
            col("received_ms").as_primitive::<Int64Type>().value(0),
            1_000
        );
        assert_eq!(col("event_type").as_string::<i32>().value(0), "stream");
        assert_eq!(
            col("segment_ms").as_primitive::<UInt32Type>().value(0),
            1_000
        );
        assert_eq!(
            col("frame_rate").as_primitive::<Float64Type>().value(0),
            29.97
        );
        assert!(col("viewer_id").is_null(0));

        let untyped: Event =
            serde_json::from_str(r#"{"event_id":"x","ts":1,"stream_id":"s1","viewer_id":"v"}"#)
                .unwrap();
        assert_eq!(
            columns.push(&untyped, 0).unwrap_err().to_string(),
            "event x lacks `type` or `event`"
        );
        assert!(columns.is_empty());
    }
}
