//! The Arrow schema events are decoded into, in the column order of the
//! ClickHouse `events` table. The wire's `type` is the column `event_type`.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// Column names, for code that builds or reads event batches.
pub mod col {
    /// Client UUID.
    pub const EVENT_ID: &str = "event_id";
    /// Client time, epoch ms.
    pub const TS: &str = "ts";
    /// Collector receive time, epoch ms.
    pub const RECEIVED_MS: &str = "received_ms";
    /// Stream id.
    pub const STREAM_ID: &str = "stream_id";
    /// Family (`type` on the wire).
    pub const EVENT_TYPE: &str = "event_type";
    /// Kind (`event` on the wire).
    pub const EVENT: &str = "event";
}

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
