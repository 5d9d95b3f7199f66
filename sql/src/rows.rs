//! Rows of the tables the migrations create, for the clickhouse crate.
//!
//! RowBinary is positional and the client runs with validation off
//! (ClickHouse 18.16 lacks `RowBinaryWithNamesAndTypes`), so nothing checks
//! these structs against the server at run time: field order and types must
//! equal the column order and types exactly. The crate's tests insert and
//! read back each struct through a migrated server to hold them together.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// One row of `events`: one accepted event.
///
/// Fields are the columns of the contract's
/// [`event_schema`](livepulse_contract::arrow::event_schema), in its order,
/// except that client time is stored twice (`ts` in seconds for partitions
/// and analysts, `ts_ms` in milliseconds).
///
/// ```no_run
/// # async fn demo(cfg: &livepulse_connectors::clickhouse::ClickHouseConfig, rows: &[livepulse_sql::EventRow]) -> clickhouse::error::Result<()> {
/// let mut insert = cfg.client().insert::<livepulse_sql::EventRow>(livepulse_contract::tables::EVENTS).await?;
/// for row in rows {
///     insert.write(row).await?;
/// }
/// insert.end().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Default, Row, Serialize, Deserialize)]
pub struct EventRow {
    /// `String`: client UUID.
    pub event_id: String,
    /// `DateTime`: client time, epoch seconds (UTC), `ts_ms` floored.
    pub ts: u32,
    /// `Int64`: client time, epoch milliseconds.
    pub ts_ms: i64,
    /// `Int64`: collector receive time, epoch milliseconds.
    pub received_ms: i64,
    /// `String`: the live stream.
    pub stream_id: String,
    /// `String`: family, `type` on the wire (`player`, `chat`, `stream`).
    pub event_type: String,
    /// `String`: kind, `event` on the wire.
    pub event: String,
    /// `Nullable(String)`: player session.
    pub session_id: Option<String>,
    /// `Nullable(String)`: pseudonymous viewer.
    pub viewer_id: Option<String>,
    /// `Nullable(String)`: device class.
    pub device: Option<String>,
    /// `Nullable(String)`: player software.
    pub player: Option<String>,
    /// `Nullable(String)`: CDN.
    pub cdn: Option<String>,
    /// `Nullable(String)`: coarse viewer region.
    pub region: Option<String>,
    /// `Nullable(UInt32)`: play pressed to first frame, ms.
    pub startup_ms: Option<u32>,
    /// `Nullable(UInt32)`: bitrate of the playing rendition, kbps.
    pub bitrate_kbps: Option<u32>,
    /// `Nullable(UInt32)`: buffer ahead of the playhead, ms.
    pub buffer_ms: Option<u32>,
    /// `Nullable(String)`: rendition name.
    pub rendition: Option<String>,
    /// `Nullable(UInt32)`: frames dropped since the previous heartbeat.
    pub dropped_frames: Option<u32>,
    /// `Nullable(UInt32)`: time played since the previous heartbeat, ms.
    pub played_ms: Option<u32>,
    /// `Nullable(UInt32)`: a stall's length, ms.
    pub stall_ms: Option<u32>,
    /// `Nullable(String)`: player error code.
    pub code: Option<String>,
    /// `Nullable(UInt8)`: whether the error stopped playback (0 or 1).
    pub fatal: Option<bool>,
    /// `Nullable(String)`: chat message text.
    pub text: Option<String>,
    /// `Nullable(String)`: which gift.
    pub gift_id: Option<String>,
    /// `Nullable(UInt32)`: gifts sent at once.
    pub count: Option<u32>,
    /// `Nullable(UInt64)`: total value of the gift event, cents.
    pub value_cents: Option<u64>,
    /// `Nullable(String)`: the stream's creator.
    pub creator_id: Option<String>,
    /// `Nullable(String)`: stream title.
    pub title: Option<String>,
    /// `Nullable(String)`: stream category.
    pub category: Option<String>,
    /// `Nullable(UInt32)`: a switch's previous bitrate, kbps.
    pub previous_bitrate_kbps: Option<u32>,
    /// `Nullable(UInt32)`: live latency, ms.
    pub latency_ms: Option<u32>,
    /// `Nullable(UInt32)`: how far the player upscales, percent.
    pub upscale_pct: Option<u32>,
    /// `Nullable(UInt32)`: an ingested segment's duration, ms.
    pub segment_ms: Option<u32>,
    /// `Nullable(Float64)`: an ingested segment's frame rate, frames/s.
    pub frame_rate: Option<f64>,
    /// `Nullable(UInt32)`: an ingested segment's keyframe interval, ms.
    pub keyframe_interval_ms: Option<u32>,
}

/// One row of `stream_engagement`: the full engagement figures of one stream
/// in one window. A re-emitted window carries a higher `version` and replaces
/// the earlier row (read with `FINAL` or `argMax(…, version)`).
#[derive(Debug, Clone, PartialEq, Default, Row, Serialize, Deserialize)]
pub struct EngagementRow {
    /// `DateTime`: window start, epoch seconds, inclusive.
    pub window_start: u32,
    /// `DateTime`: window end, epoch seconds, exclusive.
    pub window_end: u32,
    /// `UInt32`: window length in seconds (a table may hold several lengths).
    pub window_seconds: u32,
    /// `String`: the stream.
    pub stream_id: String,
    /// `UInt64`: viewers watching during the window.
    pub concurrent_viewers: u64,
    /// `UInt64`: distinct viewers with any event in the window.
    pub unique_viewers: u64,
    /// `UInt64`: time played, summed over viewers, ms.
    pub watch_ms: u64,
    /// `UInt64`: chat messages.
    pub chat_messages: u64,
    /// `UInt64`: distinct viewers who sent a chat message.
    pub chatters: u64,
    /// `UInt64`: likes.
    pub likes: u64,
    /// `UInt64`: gifts sent (sum of gift counts).
    pub gifts: u64,
    /// `UInt64`: value of the gifts, cents.
    pub gift_value_cents: u64,
    /// `UInt64`: follows.
    pub follows: u64,
    /// `UInt64`: paid subscriptions.
    pub subscriptions: u64,
    /// `UInt64`: shares.
    pub shares: u64,
    /// `UInt64`: all chat interactions (messages, likes, gifts, follows, subscriptions, shares).
    pub interactions: u64,
    /// `Nullable(Float64)`: interactions per viewer; `None` when there were no viewers.
    pub interaction_rate: Option<f64>,
    /// `UInt64`: events counted into the window.
    pub events: u64,
    /// `UInt64`: the row's version; the highest wins.
    pub version: u64,
    /// `Int64`: when the row was emitted, epoch milliseconds.
    pub emitted_ms: i64,
}

/// One row of `viewer_sessions`: one viewer's session on one stream, keyed by
/// its first event. A row with `events == 0` retracts the session under
/// `session_start_ms` (a late event moved its start); it carries the highest
/// version, so it outranks every row with that key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Row, Serialize, Deserialize)]
pub struct ViewerSessionRow {
    /// `DateTime`: the session's first event, epoch seconds (partitions).
    pub session_start: u32,
    /// `String`: the stream.
    pub stream_id: String,
    /// `String`: the viewer.
    pub viewer_id: String,
    /// `Int64`: the session's first event, epoch ms.
    pub session_start_ms: i64,
    /// `Int64`: the session's last event, epoch ms.
    pub last_event_ms: i64,
    /// `UInt64`: last minus first event, ms.
    pub duration_ms: u64,
    /// `UInt64`: time played (sum of `played_ms`), ms.
    pub watch_ms: u64,
    /// `UInt64`: chat messages sent.
    pub chat_messages: u64,
    /// `UInt64`: chat-family events sent (messages, likes, gifts, follows, ...).
    pub interactions: u64,
    /// `UInt64`: value of the gifts sent, cents.
    pub gift_value_cents: u64,
    /// `UInt64`: events in the session; 0 for a retraction.
    pub events: u64,
    /// `UInt64`: the row's version; the highest wins.
    pub version: u64,
    /// `Int64`: when the row was emitted, epoch milliseconds.
    pub emitted_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_row_follows_the_arrow_schema() {
        let mut expected: Vec<String> = livepulse_contract::arrow::event_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let ts = expected.iter().position(|name| name == "ts").unwrap();
        expected.insert(ts + 1, "ts_ms".to_owned());
        assert_eq!(<EventRow as Row>::COLUMN_NAMES, expected.as_slice());
    }
}
