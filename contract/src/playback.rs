//! The HLS origin's playback request log: one [`PlaybackRequest`] per
//! request a player made to the origin, with what the player said about
//! itself in CMCD (CTA-5004, [`Cmcd`]) and what the server measured.
//!
//! Requests travel on
//! [`topics::PLAYBACK_REQUESTS`](crate::topics::PLAYBACK_REQUESTS), many
//! per record, decoded into [`request_schema`](crate::arrow::request_schema).
//!
//! The records never carry a viewer's IP address: only its network cohort
//! (`client_cohort`, an IPv4 /24 or an IPv6 /48).
//!
//! Readers must ignore fields they do not know, so the origin can add
//! optional fields without a new topic version.
//!
//! ```
//! use livepulse_contract::playback::{ObjectKind, PlaybackBatch};
//!
//! let json = r#"{"schema_version":1,"requests":[{"request_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10",
//!   "received_ms":1700000000000,
//!   "stream_id":"s1","rendition":"720p","object":"seg00004.m4s","object_kind":"segment",
//!   "status":200,"bytes_sent":48232,"complete":true,"ttfb_us":180,"ttlb_us":410,
//!   "client_cohort":"203.0.113.0/24",
//!   "cmcd":{"buffer_length_ms":1000,"object_type":"av","startup":true,"session_id":"sess-123"}}]}"#;
//! let batch: PlaybackBatch = serde_json::from_str(json).unwrap();
//! let request = &batch.requests[0];
//! assert_eq!(request.object_kind, ObjectKind::Segment);
//! assert_eq!(request.cmcd.as_ref().unwrap().buffer_length_ms, Some(1000));
//! ```

use serde::{Deserialize, Serialize};

/// A record of playback requests in the JSON encoding (see
/// [`record`](crate::record)), in the order their responses finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybackBatch {
    /// Contract version of the requests inside.
    pub schema_version: u16,
    /// The requests, all of streams in the record's partition.
    pub requests: Vec<PlaybackRequest>,
}

/// What a playback request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// A master or media playlist (`.m3u8`).
    Playlist,
    /// An fMP4 initialization segment (`.mp4`).
    Init,
    /// A media segment: `.ts`, `.m4s`, `.aac` or `.vtt`.
    Segment,
}

impl ObjectKind {
    /// The wire name, as in `"object_kind": "segment"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Playlist => "playlist",
            ObjectKind::Init => "init",
            ObjectKind::Segment => "segment",
        }
    }
}

/// One request to the origin's playback routes (`GET`/`HEAD /hls/...`),
/// logged when its response body finished or was abandoned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybackRequest {
    /// A UUID the origin gives the request, so a log record that lands
    /// twice (a producer retry) is counted once.
    pub request_id: String,
    /// When the origin received the request, epoch milliseconds.
    pub received_ms: i64,
    /// The stream requested; the Kafka key.
    pub stream_id: String,
    /// The rendition folder of the object (e.g. `720p`); absent for objects
    /// at the stream's root, such as the master playlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendition: Option<String>,
    /// The object's file name, e.g. `seg00004.m4s` or `index.m3u8`.
    pub object: String,
    /// What kind of object that is (from its extension).
    pub object_kind: ObjectKind,
    /// HTTP status answered, e.g. 200 or 404.
    pub status: u16,
    /// Body bytes handed to the connection.
    pub bytes_sent: u64,
    /// Whether the whole body was handed over (false when the client went
    /// away first, and for `HEAD`).
    pub complete: bool,
    /// Receipt of the request to the first body byte handed to the
    /// connection, microseconds; absent when no body byte was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfb_us: Option<u64>,
    /// Receipt of the request to the last body byte handed to the
    /// connection, microseconds; absent unless `complete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttlb_us: Option<u64>,
    /// The client's network, never its address: the IPv4 /24 (e.g.
    /// `203.0.113.0/24`) or IPv6 /48 (e.g. `2001:db8:1::/48`); `unknown`
    /// when the server did not see an address.
    pub client_cohort: String,
    /// The player's CMCD data; absent when it sent none or sent CMCD that
    /// does not parse (the origin counts those, the request is still logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmcd: Option<Cmcd>,
}

/// CMCD (CTA-5004) keys a player sent with a request, one field per key,
/// from the `CMCD` query argument or the `CMCD-Object`, `CMCD-Request`,
/// `CMCD-Session` and `CMCD-Status` headers. Every field is optional: players
/// send only what they know. Unknown and custom keys are not kept.
///
/// CMCD v2 sends `br`, `bl`, `mtp`, `tb`, `bsa` and `bsd` as inner lists
/// (one value per track type) and `nor` as a list; each field below says how
/// such a list becomes one value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cmcd {
    /// `br`: encoded bitrate of the requested object, kbps (v2 list: the sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoded_bitrate_kbps: Option<u64>,
    /// `d`: playback duration of the requested object, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_duration_ms: Option<u64>,
    /// `ot`: object type token: `m` manifest, `a` audio, `v` video, `av`
    /// muxed, `i` init, `c` caption, `tt` timed text, `k` key, `o` other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
    /// `tb`: top bitrate the player can choose, kbps (v2 list: the sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_bitrate_kbps: Option<u64>,
    /// `bl`: buffer length, ms (v2 list: the smallest, the buffer that runs
    /// dry first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_length_ms: Option<u64>,
    /// `dl`: deadline until the object is needed to avoid a stall, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// `mtp`: throughput the player measured, kbps (v2 list: the largest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_throughput_kbps: Option<u64>,
    /// `nor`: the next object the player expects to request, relative URL
    /// (v2 list: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_object_request: Option<String>,
    /// `nrr`: the next byte range the player expects to request, e.g. `12323-48763`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_range_request: Option<String>,
    /// `su`: the object is needed urgently (startup, seek, recovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<bool>,
    /// `cid`: content id, at most 128 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_id: Option<String>,
    /// `pr`: playback rate, 1.0 is real time (players send it only when not 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_rate: Option<f64>,
    /// `sf`: streaming format token: `h` HLS, `d` DASH, `s` Smooth, `e` HESP, `o` other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming_format: Option<String>,
    /// `sid`: playback session id, at most 64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// `st`: stream type token: `v` VOD, `l` live, `ll` low-latency live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_type: Option<String>,
    /// `v`: CMCD version; players omit it for version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// `bs`: the buffer ran dry since the previous request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_starvation: Option<bool>,
    /// `rtp`: throughput the player asks for as sufficient, kbps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_max_throughput_kbps: Option<u64>,
    /// `ltc` (v2): live latency, media availability to rendering, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_latency_ms: Option<u64>,
    /// `pt` (v2): playhead time being rendered, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playhead_time_ms: Option<u64>,
    /// `sn` (v2): sequence number of this report within the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<u64>,
    /// `sta` (v2): player state token: `s` starting, `p` playing, `k`
    /// seeking, `r` rebuffering, `a` paused, `e` ended, `f` fatal error,
    /// `q` quit, `d` preloading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub player_state: Option<String>,
    /// `dfa` (v2): frames dropped since the session began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_frames: Option<u64>,
    /// `ec` (v2): player error codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_codes: Option<Vec<String>>,
    /// `msd` (v2): play instruction to the first frame, ms; sent once per session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_start_delay_ms: Option<u64>,
    /// `bsa` (v2): buffer starvations since the session began (list: the sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_starvations: Option<u64>,
    /// `bsd` (v2): length of the starvation periods reported with this
    /// request, ms (list: the sum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buffer_starvation_ms: Option<u64>,
    /// `cdn` (v2): the delivery network the player fetches from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cdn: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_fields_stay_out_of_the_json() {
        let request = PlaybackRequest {
            request_id: "6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10".into(),
            received_ms: 1,
            stream_id: "s".into(),
            rendition: None,
            object: "master.m3u8".into(),
            object_kind: ObjectKind::Playlist,
            status: 404,
            bytes_sent: 0,
            complete: true,
            ttfb_us: None,
            ttlb_us: None,
            client_cohort: "unknown".into(),
            cmcd: Some(Cmcd {
                startup: Some(true),
                ..Cmcd::default()
            }),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            json,
            r#"{"request_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","received_ms":1,"stream_id":"s","object":"master.m3u8","object_kind":"playlist","status":404,"bytes_sent":0,"complete":true,"client_cohort":"unknown","cmcd":{"startup":true}}"#
        );
        assert_eq!(
            serde_json::from_str::<PlaybackRequest>(&json).unwrap(),
            request
        );
    }
}
