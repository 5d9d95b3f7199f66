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

/// One row of `playback_requests`: one request the origin logged.
///
/// Fields are the columns of the contract's
/// [`request_schema`](livepulse_contract::arrow::request_schema), in its
/// order (its `event_id` is `request_id`, its `event` is `object_kind`),
/// except that the receipt is stored twice (`ts` in seconds, `ts_ms`).
#[derive(Debug, Clone, PartialEq, Default, Row, Serialize, Deserialize)]
pub struct PlaybackRequestRow {
    /// `String`: the origin's UUID of the request.
    pub request_id: String,
    /// `DateTime`: receipt, epoch seconds.
    pub ts: u32,
    /// `Int64`: receipt, epoch milliseconds.
    pub ts_ms: i64,
    /// `String`: the stream.
    pub stream_id: String,
    /// `String`: always `request`.
    pub event_type: String,
    /// `String`: `playlist`, `init` or `segment`.
    pub object_kind: String,
    /// `Nullable(String)`: CMCD `sid`.
    pub session_id: Option<String>,
    /// `Nullable(String)`: rendition folder.
    pub rendition: Option<String>,
    /// `Nullable(String)`: CMCD `cdn` (v2).
    pub cdn: Option<String>,
    /// `String`: the object's file name.
    pub object: String,
    /// `UInt32`: HTTP status.
    pub status: u32,
    /// `UInt64`: body bytes sent.
    pub bytes_sent: u64,
    /// `UInt8`: whether the whole body was sent.
    pub complete: bool,
    /// `Nullable(UInt64)`: time to first byte, µs.
    pub ttfb_us: Option<u64>,
    /// `Nullable(UInt64)`: time to last byte, µs.
    pub ttlb_us: Option<u64>,
    /// `String`: the client's network.
    pub client_cohort: String,
    /// `Nullable(UInt64)`: CMCD `br`, kbps.
    pub cmcd_br: Option<u64>,
    /// `Nullable(UInt64)`: CMCD `d`, ms.
    pub cmcd_d: Option<u64>,
    /// `Nullable(String)`: CMCD `ot`.
    pub cmcd_ot: Option<String>,
    /// `Nullable(UInt64)`: CMCD `tb`, kbps.
    pub cmcd_tb: Option<u64>,
    /// `Nullable(UInt64)`: CMCD `bl`, ms.
    pub cmcd_bl: Option<u64>,
    /// `Nullable(UInt64)`: CMCD `dl`, ms.
    pub cmcd_dl: Option<u64>,
    /// `Nullable(UInt64)`: CMCD `mtp`, kbps.
    pub cmcd_mtp: Option<u64>,
    /// `Nullable(String)`: CMCD `nor`.
    pub cmcd_nor: Option<String>,
    /// `Nullable(String)`: CMCD `nrr`.
    pub cmcd_nrr: Option<String>,
    /// `Nullable(UInt8)`: CMCD `su`.
    pub cmcd_su: Option<bool>,
    /// `Nullable(String)`: CMCD `cid`.
    pub cmcd_cid: Option<String>,
    /// `Nullable(Float64)`: CMCD `pr`.
    pub cmcd_pr: Option<f64>,
    /// `Nullable(String)`: CMCD `sf`.
    pub cmcd_sf: Option<String>,
    /// `Nullable(String)`: CMCD `st`.
    pub cmcd_st: Option<String>,
    /// `Nullable(UInt64)`: CMCD `v`.
    pub cmcd_v: Option<u64>,
    /// `Nullable(UInt8)`: CMCD `bs`.
    pub cmcd_bs: Option<bool>,
    /// `Nullable(UInt64)`: CMCD `rtp`, kbps.
    pub cmcd_rtp: Option<u64>,
    /// `Nullable(UInt64)`: CMCD `ltc` (v2), ms.
    pub cmcd_ltc: Option<u64>,
    /// `Nullable(UInt64)`: CMCD `pt` (v2), ms.
    pub cmcd_pt: Option<u64>,
    /// `Nullable(UInt64)`: CMCD `sn` (v2).
    pub cmcd_sn: Option<u64>,
    /// `Nullable(String)`: CMCD `sta` (v2).
    pub cmcd_sta: Option<String>,
    /// `Nullable(UInt64)`: CMCD `dfa` (v2).
    pub cmcd_dfa: Option<u64>,
    /// `Nullable(String)`: CMCD `ec` (v2), comma-separated.
    pub cmcd_ec: Option<String>,
    /// `Nullable(UInt64)`: CMCD `msd` (v2), ms.
    pub cmcd_msd: Option<u64>,
    /// `Nullable(UInt64)`: CMCD `bsa` (v2).
    pub cmcd_bsa: Option<u64>,
    /// `Nullable(UInt64)`: CMCD `bsd` (v2), ms.
    pub cmcd_bsd: Option<u64>,
}

/// One row of `qoe_minutes`: the full QoE figures of one (minute, stream,
/// rendition, device, cdn, region, network). Definitions in
/// `pipelines/src/jobs/qoe/qoe_minutes.sql`.
#[derive(Debug, Clone, PartialEq, Default, Row, Serialize, Deserialize)]
#[allow(missing_docs)] // the columns are defined in the job's SQL
pub struct QoeMinuteRow {
    /// `DateTime`: window start, epoch seconds.
    pub window_start: u32,
    /// `DateTime`: window end, epoch seconds.
    pub window_end: u32,
    pub stream_id: String,
    pub rendition: String,
    pub device: String,
    pub cdn: String,
    pub region: String,
    pub network: String,
    pub views: u64,
    pub attempts: u64,
    pub plays: u64,
    pub startup_p50_ms: Option<f64>,
    pub startup_p90_ms: Option<f64>,
    pub startup_p99_ms: Option<f64>,
    pub watch_ms: u64,
    pub stalls: u64,
    pub stall_ms: u64,
    pub rebuffer_ratio: Option<f64>,
    pub rebuffers_per_minute: Option<f64>,
    pub avg_bitrate_kbps: Option<f64>,
    pub peak_bitrate_kbps: Option<u32>,
    pub up_switches: u64,
    pub down_switches: u64,
    pub dropped_frames: u64,
    pub latency_ms: Option<f64>,
    pub fatal_errors: u64,
    pub requests: u64,
    pub failed_requests: u64,
    pub starvations: u64,
    pub media_ms: u64,
    pub cmcd_avg_bitrate_kbps: Option<f64>,
    pub cmcd_peak_bitrate_kbps: Option<u64>,
    pub throughput_kbps: Option<f64>,
    pub cmcd_latency_ms: Option<f64>,
    pub ttfb_ms: Option<f64>,
    /// `UInt64`: rows counted into the window.
    pub events: u64,
    /// `UInt64`: the row's version; the highest wins.
    pub version: u64,
    /// `Int64`: when the row was emitted, epoch milliseconds.
    pub emitted_ms: i64,
}

/// One row of `qoe_views`: one playback session of a stream, keyed by its
/// first event. Definitions in `pipelines/src/jobs/qoe/qoe_views.sql`. A
/// row with `events == 0` retracts the view under `first_event_ms`.
#[derive(Debug, Clone, PartialEq, Default, Row, Serialize, Deserialize)]
#[allow(missing_docs)] // the columns are defined in the job's SQL
pub struct QoeViewRow {
    /// `DateTime`: the view's first event, epoch seconds (partitions).
    pub view_start: u32,
    pub stream_id: String,
    pub session_id: String,
    pub viewer_id: String,
    pub device: String,
    pub cdn: String,
    pub region: String,
    pub network: String,
    pub first_event_ms: i64,
    pub last_event_ms: i64,
    pub player_events: u64,
    pub requests: u64,
    pub played: bool,
    pub start_failure: bool,
    pub playback_failure: bool,
    pub exit_before_start: bool,
    pub startup_ms: Option<i64>,
    pub watch_ms: u64,
    pub stalls: u64,
    pub stall_ms: Option<u64>,
    pub rebuffer_ratio: Option<f64>,
    pub avg_bitrate_kbps: Option<f64>,
    pub peak_bitrate_kbps: Option<u64>,
    pub start_bitrate_kbps: Option<u64>,
    pub up_switches: u64,
    pub down_switches: u64,
    pub dropped_frames: u64,
    pub latency_ms: Option<f64>,
    pub throughput_kbps: Option<f64>,
    pub startup_score: Option<f64>,
    pub smoothness_score: Option<f64>,
    pub quality_score: Option<f64>,
    pub success_score: Option<f64>,
    /// `UInt64`: rows in the view; 0 for a retraction.
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

    #[test]
    fn playback_request_row_follows_the_arrow_schema() {
        let mut expected: Vec<String> = livepulse_contract::arrow::request_schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "event_id" => "request_id".to_owned(),
                "event" => "object_kind".to_owned(),
                name => name.to_owned(),
            })
            .collect();
        let ts = expected.iter().position(|name| name == "ts").unwrap();
        expected.insert(ts + 1, "ts_ms".to_owned());
        assert_eq!(
            <PlaybackRequestRow as Row>::COLUMN_NAMES,
            expected.as_slice()
        );
    }
}
