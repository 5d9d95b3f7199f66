-- The QoE job's views: one row per playback session of a stream, keyed by
-- its first event, with the published per-view scores. Definitions and
-- sources: pipelines/src/jobs/qoe/qoe_views.sql. A view re-emitted after
-- late events carries a higher `version`; a late event that moves a view's
-- start retracts the row under the old start with `events = 0` and the
-- highest version: read with `FINAL ... WHERE events > 0`.
CREATE TABLE IF NOT EXISTS qoe_views
(
    view_start DateTime,
    stream_id String,
    session_id String,
    viewer_id String,
    device String,
    cdn String,
    region String,
    network String,
    first_event_ms Int64,
    last_event_ms Int64,
    player_events UInt64,
    requests UInt64,
    played UInt8,
    start_failure UInt8,
    playback_failure UInt8,
    exit_before_start UInt8,
    startup_ms Nullable(Int64),
    watch_ms UInt64,
    stalls UInt64,
    stall_ms Nullable(UInt64),
    rebuffer_ratio Nullable(Float64),
    avg_bitrate_kbps Nullable(Float64),
    peak_bitrate_kbps Nullable(UInt64),
    start_bitrate_kbps Nullable(UInt64),
    up_switches UInt64,
    down_switches UInt64,
    dropped_frames UInt64,
    latency_ms Nullable(Float64),
    throughput_kbps Nullable(Float64),
    startup_score Nullable(Float64),
    smoothness_score Nullable(Float64),
    quality_score Nullable(Float64),
    success_score Nullable(Float64),
    events UInt64,
    version UInt64,
    emitted_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(view_start)
ORDER BY (stream_id, session_id, first_event_ms);
