//! The HLS origin: publishers push HLS over HTTP `PUT` (what ffmpeg's HLS
//! muxer does with `-method PUT`) or RTMP (OBS, hardware encoders), viewers
//! play it back, and every playback request goes to Kafka with the
//! player's CMCD data.
//!
//! # Publishing: `PUT` / `DELETE /live/{stream_key}/{path}`
//!
//! * **Key**: the path carries the stream key ([`OriginConfig::streams`] or
//!   created with the admin API). An unknown or revoked key gets 403 and
//!   nothing is stored; ffmpeg ignores the status, so not storing is the
//!   enforcement. Logs name the stream, never the key.
//! * **Path**: `name` or `rendition/name`, segments of `[A-Za-z0-9_.-]`, no
//!   `.`/`..`, no `%` escapes, extension `m3u8`, `ts`, `m4s`, `mp4` (init),
//!   `aac` or `vtt`; otherwise 400 with the reason.
//! * **Bounds**: bodies beyond `max_segment_bytes` / `max_playlist_bytes`
//!   get 413; an upload must finish within `upload_timeout_ms` and never
//!   pause longer than `upload_idle_timeout_ms` (408). Nothing of a refused
//!   upload is stored.
//! * **Playlists** are checked before they replace the previous one (422
//!   with the reason otherwise), and URLs into `/live/{key}/` become
//!   relative so the key is never served. `#EXT-X-ENDLIST` in every media
//!   playlist ends the stream.
//! * An object is playable as soon as its body is complete (201 new, 204
//!   replaced); `DELETE` removes it (204, 404 when unknown). A stream holds
//!   at most 16 rendition folders and a folder 8 playlists and init
//!   segments: beyond them, 507.
//! * A media playlist is served up to its last listed segment that is
//!   stored, so a playlist that overtook its newest segment (ffmpeg does
//!   not wait for one upload's answer before the next) never sends a
//!   player to a 404; it is whole the moment the segment lands. Listed
//!   segments missing before the first stored one are gone (evicted or
//!   deleted) and do not cut it.
//!
//! # Publishing over RTMP: `rtmp://host:port/live/{stream_key}`
//!
//! The application is `live` and the stream name the key (OBS: server
//! `rtmp://host:port/live`, the key as stream key). The origin listens on
//! [`OriginConfig::rtmp_listen`] once [`Origin::with_rtmp`] handed it the
//! bound listener. H.264 and AAC are remuxed, never transcoded, into
//! MPEG-TS segments cut on keyframes once `rtmp_segment_ms` elapsed, a
//! sliding media playlist `src/index.m3u8` and a `master.m3u8` (peak
//! `BANDWIDTH`, `CODECS`, `RESOLUTION` from the encoder's metadata). They
//! enter the store through the same entry point as HTTP uploads, so
//! playback, the request log and the lifecycle events are the same.
//!
//! * **Key**: an unknown or revoked key gets `NetStream.Publish.BadName`
//!   and the connection closes, logged without the key and counted
//!   (`livepulse_origin_rtmp_refused_total{reason="key"}`). Revoking a key
//!   closes its publisher's connection at its next segment.
//! * **One publisher per key**: a second publish of a key that is live is
//!   refused the same way (`reason="busy"`); the first goes on.
//! * **Bounds**: `rtmp_max_connections` at once (more are closed at once);
//!   audio and video messages up to `rtmp_max_message_bytes` (the chunk
//!   layer may buffer one message up to RTMP's own 16 MiB before that
//!   check); segments up to `max_segment_bytes`, so a stream without
//!   keyframes is closed; a connection silent for `rtmp_idle_timeout_ms`
//!   is closed.
//! * **End**: `deleteStream`, the connection closing, the idle timeout or
//!   the origin stopping flush the last segment and write
//!   `#EXT-X-ENDLIST`: the stream ends as an HTTP publisher's would.
//! * **Codecs**: H.264 and AAC (Main, LC, SSR, LTP). Anything else (enhanced
//!   RTMP's HEVC or AV1, MP3, HE-AAC) closes the connection with the reason
//!   logged. Segment names carry the publish's start time, so a
//!   reconnecting encoder never reuses one.
//! * **Ingest health**: each segment's `stream`/`health` event comes from
//!   the segmenter's counts (below).
//!
//! An RTMP and an HTTP publisher of the same stream at once are not told
//! apart: their objects would mix.
//!
//! # Playback: `GET` / `HEAD /hls/{stream_id}/{path}`
//!
//! Playlists (`application/vnd.apple.mpegurl`, `Cache-Control:
//! public, max-age=1` while live), init segments (`video/mp4`) and media
//! segments (`video/mp2t`, `video/iso.segment`, ...) with long, immutable
//! caching, as are playlists that will not change again. Every answer
//! carries `Access-Control-Allow-Origin: *` and exposes `CMSD-Static` and
//! `CMSD-Dynamic`; `OPTIONS` answers the preflight of players sending the
//! `CMCD-*` headers. Unknown streams and objects are 404.
//!
//! Segment names are cached as immutable, so a publisher restarting under
//! the same stream id should not reuse segment names (e.g. ffmpeg
//! `-hls_start_number_source epoch`).
//!
//! # Request log
//!
//! Each playback request for a well-formed path becomes a
//! [`PlaybackRequest`](livepulse_contract::playback::PlaybackRequest) once
//! its body finished (or was abandoned): stream, rendition, object, status,
//! bytes, time to first and last byte, the client's network cohort (IPv4
//! /24, IPv6 /48; never the address; behind
//! [`OriginConfig::trusted_proxies`] the right-most untrusted address of
//! `X-Forwarded-For`) and the CMCD the player sent (query argument or
//! headers; malformed CMCD is counted and left out). Requests are
//! buffered (`access_buffer_requests`) and produced every `access_flush_ms`
//! as [`PlaybackBatch`](livepulse_contract::playback::PlaybackBatch) records
//! keyed by stream; when the buffer is full or the broker does not take
//! them they are dropped and counted. Viewers never wait on Kafka.
//!
//! # Ingest health
//!
//! Every media segment of every rendition becomes a `stream`/`health`
//! event on the stream topic (through the same producer as start and
//! end): `rendition` (the folder; RTMP's is `src`), `segment_ms`,
//! `bitrate_kbps`, and for video `frame_rate` and `keyframe_interval_ms`
//! (the duration per keyframe). RTMP segments are measured by the
//! segmenter (the audio and video frames the encoder sent over the
//! segment's media time). An uploaded segment's duration is the `#EXTINF`
//! of the playlist in its folder that lists it, its bit rate its size over
//! that; the event goes out once both the body and the `#EXTINF` are known,
//! in either order. Frames and keyframes come from parsing it: MPEG-TS
//! (PES starts of the first video stream; the random access indicator or
//! an IDR picture), fMP4 (`trun` samples of the video tracks the init
//! segment's `hdlr` names, sync flags from `trun`, `tfhd` or `trex`). A
//! segment that does not parse still gets `segment_ms` and `bitrate_kbps`
//! and is counted (`livepulse_origin_health_unparsed_total{format}`).
//!
//! # Stream lifecycle
//!
//! A stream's first media segment produces a `stream`/`start` event (with
//! `creator_id`) to the stream topic; every media playlist ending, key
//! revocation, silence beyond `stream_idle_timeout_ms` or the origin
//! stopping produces `stream`/`end`. A segment arriving a second or more
//! after the end begins a new session (earlier ones are the ending
//! session's stragglers: ffmpeg does not wait for one upload to be answered
//! before the next). Ended streams stay served for `ended_retention_ms`;
//! revoked ones go at once.
//!
//! # Admin API (`Authorization: Bearer <admin_token>`)
//!
//! `GET /admin/streams` lists streams and creators (never keys); `POST
//! /admin/streams` `{"stream_id", "creator_id"}` answers 201 with a fresh
//! random `key`; `DELETE /admin/streams/{stream_id}` revokes it. With
//! [`OriginConfig::keys_file`] both survive a restart: each change is
//! written to the file (atomically, mode `0600`) before it is answered, and
//! one that cannot be written is not made (500). At start the file is
//! merged with [`OriginConfig::streams`]: configured keys it revoked stay
//! revoked; a created key whose stream has a configured key gives way to
//! the config. Without `admin_token` these routes answer 404.
//!
//! # Memory and disk
//!
//! Objects live in memory: `max_segments_per_rendition` segments per
//! rendition and `max_memory_bytes` overall (the oldest segments of the
//! largest streams go first). With [`OriginConfig::spill_dir`], a segment
//! the memory bound would evict while a playlist still lists it is written
//! there instead (up to `spill_max_bytes`; when full, its oldest segments
//! make room) and served from disk with the same headers. A spilled
//! segment is removed when no playlist lists it any more, when it falls
//! out of the window, is deleted or replaced, when its stream is removed
//! (after `ended_retention_ms`, or revoked) and when the origin stops.
//!
//! # Connections
//!
//! HTTP/1.1 only (put a TLS or HTTP/2 terminator in front when needed).
//! Clients may half-close after sending (ffmpeg does); request headers must
//! arrive within 30 s, and a keep-alive connection idle that long is closed.
//!
//! `/healthz` answers 200 while serving (naming a broker problem in the
//! text); `/metrics` is Prometheus text (names in [`metrics`]).

mod access;
mod admin;
mod cmcd;
mod cohort;
mod config;
mod health;
mod ingest;
mod keys;
mod keys_file;
pub mod metrics;
mod path;
mod playback;
mod playlist;
mod rtmp;
mod server;
mod service;
mod sink;
mod spill;
mod store;

pub use admin::{CreatedStream, NewStream, StreamInfo};
pub use config::{
    MAX_RECORD_BYTES, MAX_RTMP_MESSAGE_BYTES, MIN_PLAYLIST_BYTES, MIN_RECORD_BYTES,
    MIN_RTMP_MESSAGE_BYTES, MIN_SECRET_CHARS, MIN_SEGMENT_BYTES, OriginConfig, Secret, StreamKey,
};
pub use keys_file::KeysFileError;
pub use livepulse_contract::api::ErrorResponse;
pub use playback::{ERROR_CACHE, FINAL_CACHE, LIVE_PLAYLIST_CACHE};
pub use service::Origin;
pub use sink::{RequestRecord, pack_requests};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use livepulse_connectors::ConfigError;
use rdkafka::error::KafkaError;
use thiserror::Error;

/// Why the origin cannot start or stopped serving.
#[derive(Debug, Error)]
pub enum OriginError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Kafka producer cannot be created.
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] KafkaError),
    /// The Prometheus recorder cannot be installed (another one is).
    #[error("cannot install the Prometheus recorder: {0}")]
    Metrics(String),
    /// Binding the listener failed.
    #[error("HTTP server error: {0}")]
    Serve(#[from] std::io::Error),
    /// The keys file cannot be used.
    #[error(transparent)]
    Keys(#[from] KeysFileError),
    /// The spill directory cannot be used.
    #[error("cannot use the spill directory {}: {source}", dir.display())]
    Spill {
        /// `spill_dir`.
        dir: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// An [`ErrorResponse`] answer.
fn error(status: StatusCode, message: &str) -> Response {
    let body = ErrorResponse {
        error: message.to_owned(),
    };
    (status, Json(body)).into_response()
}

/// An answer without a body.
fn empty(status: StatusCode) -> Response {
    status.into_response()
}
