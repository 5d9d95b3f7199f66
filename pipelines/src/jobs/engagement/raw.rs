//! The raw `events` table: every de-duplicated event, as the columns of
//! [`EventRow`](livepulse_sql::EventRow).

use livepulse_contract::tables;

use crate::sinks::row_binary::Kind::{Bool, DateTimeFromMs, Float64, Int64, Text, UInt32, UInt64};
use crate::sinks::row_binary::{RawColumn, RawTable};

/// How each column of `events` is read from the engagement job's input.
pub const EVENTS: RawTable = RawTable {
    name: tables::EVENTS,
    columns: &[
        RawColumn::new("event_id", Text),
        RawColumn::new("ts", DateTimeFromMs),
        RawColumn::new("ts_ms", Int64).from("ts"),
        RawColumn::new("received_ms", Int64),
        RawColumn::new("stream_id", Text),
        RawColumn::new("event_type", Text),
        RawColumn::new("event", Text),
        RawColumn::nullable("session_id", Text),
        RawColumn::nullable("viewer_id", Text),
        RawColumn::nullable("device", Text),
        RawColumn::nullable("player", Text),
        RawColumn::nullable("cdn", Text),
        RawColumn::nullable("region", Text),
        RawColumn::nullable("startup_ms", UInt32),
        RawColumn::nullable("bitrate_kbps", UInt32),
        RawColumn::nullable("buffer_ms", UInt32),
        RawColumn::nullable("rendition", Text),
        RawColumn::nullable("dropped_frames", UInt32),
        RawColumn::nullable("played_ms", UInt32),
        RawColumn::nullable("stall_ms", UInt32),
        RawColumn::nullable("code", Text),
        RawColumn::nullable("fatal", Bool),
        RawColumn::nullable("text", Text),
        RawColumn::nullable("gift_id", Text),
        RawColumn::nullable("count", UInt32),
        RawColumn::nullable("value_cents", UInt64),
        RawColumn::nullable("creator_id", Text),
        RawColumn::nullable("title", Text),
        RawColumn::nullable("category", Text),
        RawColumn::nullable("previous_bitrate_kbps", UInt32),
        RawColumn::nullable("latency_ms", UInt32),
        RawColumn::nullable("upscale_pct", UInt32),
        RawColumn::nullable("segment_ms", UInt32),
        RawColumn::nullable("frame_rate", Float64),
        RawColumn::nullable("keyframe_interval_ms", UInt32),
    ],
    only: None,
};

#[cfg(test)]
mod tests {
    use livepulse_sql::EventRow;

    use super::*;

    #[test]
    fn the_columns_are_those_of_event_row() {
        let names: Vec<&str> = EVENTS.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, <EventRow as clickhouse::Row>::COLUMN_NAMES);
    }
}
