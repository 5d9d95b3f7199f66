//! The origin's Prometheus metrics, recorded into the process-wide recorder
//! the collector installs (one `/metrics` for every service in a process).

use std::sync::Once;

use metrics::{describe_counter, describe_gauge};
use metrics_exporter_prometheus::PrometheusHandle;

use super::OriginError;
use crate::collector::CollectorError;

/// Uploads (`PUT`/`DELETE /live/...`), by `method` and `status`.
pub const UPLOADS: &str = "livepulse_origin_uploads_total";
/// Bytes publishers had stored: HTTP uploads and the segments and
/// playlists remuxed from RTMP.
pub const UPLOAD_BYTES: &str = "livepulse_origin_upload_bytes_total";
/// Uploads refused because their stream key is unknown or revoked.
pub const REJECTED_KEYS: &str = "livepulse_origin_rejected_keys_total";
/// Objects evicted before the publisher deleted them, by `reason`
/// (`window`: beyond `max_segments_per_rendition`; `memory`: beyond
/// `max_memory_bytes`, not spilled; `spill`: the oldest spilled segment,
/// making room in `spill_max_bytes` for a newer one).
pub const EVICTIONS: &str = "livepulse_origin_evictions_total";
/// Bytes stored objects take in memory.
pub const STORE_BYTES: &str = "livepulse_origin_store_bytes";
/// Segments written to the spill directory, by `result` (`ok`, `error`:
/// evicted instead).
pub const SPILLS: &str = "livepulse_origin_spills_total";
/// Bytes of spilled segments on disk (and being written).
pub const SPILL_BYTES: &str = "livepulse_origin_spill_bytes";
/// Uploaded segments whose media did not parse, by `format` (`ts`,
/// `fmp4`): their health events carry no frame rate or keyframe interval.
pub const HEALTH_UNPARSED: &str = "livepulse_origin_health_unparsed_total";
/// Streams stored (live, waiting for their first segment, or ended and
/// still served).
pub const STREAMS: &str = "livepulse_origin_streams";
/// Streams that began (first segment).
pub const STREAMS_STARTED: &str = "livepulse_origin_streams_started_total";
/// Streams that ended, by `reason` (`endlist`, `revoked`, `idle`, `shutdown`).
pub const STREAMS_ENDED: &str = "livepulse_origin_streams_ended_total";
/// Playback requests (`GET`/`HEAD /hls/...`), by `status`.
pub const PLAYBACK_REQUESTS: &str = "livepulse_origin_playback_requests_total";
/// Body bytes handed to viewers' connections.
pub const PLAYBACK_BYTES: &str = "livepulse_origin_playback_bytes_total";
/// Playback requests whose CMCD did not parse (logged without CMCD).
pub const CMCD_MALFORMED: &str = "livepulse_origin_cmcd_malformed_total";
/// Playback requests the broker acknowledged in the request log.
pub const ACCESS_PRODUCED: &str = "livepulse_origin_access_requests_produced_total";
/// Playback requests left out of the request log, by `reason`
/// (`buffer_full`, `producer_queue`, `broker`).
pub const ACCESS_DROPPED: &str = "livepulse_origin_access_requests_dropped_total";
/// Stream events (`start`, `end`, `health`) the broker did not take, by
/// `event`.
pub const LIFECYCLE_DROPPED: &str = "livepulse_origin_stream_events_dropped_total";

/// Open RTMP connections.
pub const RTMP_CONNECTIONS: &str = "livepulse_origin_rtmp_connections";
/// RTMP connections or publishes refused, by `reason` (`key`: unknown or
/// revoked stream key; `busy`: the stream already has a publisher; `app`:
/// not `live`; `play`: playback asked for; `connections`:
/// `rtmp_max_connections` reached).
pub const RTMP_REFUSED: &str = "livepulse_origin_rtmp_refused_total";
/// RTMP connections that ended, by `reason` (`closed`, `idle`, `revoked`,
/// `refused`, `shutdown`, `error`).
pub const RTMP_DISCONNECTS: &str = "livepulse_origin_rtmp_disconnects_total";
/// Segments remuxed from RTMP streams.
pub const RTMP_SEGMENTS: &str = "livepulse_origin_rtmp_segments_total";

static DESCRIBE: Once = Once::new();

/// The process's Prometheus recorder, with the origin's metrics described.
pub(crate) fn handle() -> Result<&'static PrometheusHandle, OriginError> {
    let handle = crate::collector::metrics::handle().map_err(|err| match err {
        CollectorError::Metrics(reason) => OriginError::Metrics(reason),
        other => OriginError::Metrics(other.to_string()),
    })?;
    DESCRIBE.call_once(describe);
    Ok(handle)
}

fn describe() {
    describe_counter!(UPLOADS, "Uploads by method and HTTP status");
    describe_counter!(
        UPLOAD_BYTES,
        "Bytes publishers had stored (HTTP uploads, RTMP remuxes)"
    );
    describe_counter!(
        REJECTED_KEYS,
        "Uploads with an unknown or revoked stream key"
    );
    describe_counter!(EVICTIONS, "Objects evicted before deletion, by reason");
    describe_gauge!(STORE_BYTES, "Bytes stored objects take in memory");
    describe_counter!(SPILLS, "Segments written to the spill directory, by result");
    describe_gauge!(SPILL_BYTES, "Bytes of spilled segments on disk");
    describe_counter!(
        HEALTH_UNPARSED,
        "Uploaded segments whose media did not parse, by format"
    );
    describe_gauge!(STREAMS, "Streams stored");
    describe_counter!(STREAMS_STARTED, "Streams that began");
    describe_counter!(STREAMS_ENDED, "Streams that ended, by reason");
    describe_counter!(PLAYBACK_REQUESTS, "Playback requests by HTTP status");
    describe_counter!(PLAYBACK_BYTES, "Body bytes sent to viewers");
    describe_counter!(CMCD_MALFORMED, "Playback requests with malformed CMCD");
    describe_counter!(
        ACCESS_PRODUCED,
        "Playback requests acknowledged by the broker"
    );
    describe_counter!(
        ACCESS_DROPPED,
        "Playback requests left out of the log, by reason"
    );
    describe_counter!(LIFECYCLE_DROPPED, "Stream events the broker did not take");
    describe_gauge!(RTMP_CONNECTIONS, "Open RTMP connections");
    describe_counter!(
        RTMP_REFUSED,
        "RTMP connections or publishes refused, by reason"
    );
    describe_counter!(RTMP_DISCONNECTS, "RTMP connections that ended, by reason");
    describe_counter!(RTMP_SEGMENTS, "Segments remuxed from RTMP streams");
}
