-- The QoE job's per-minute figures: one row per (minute, stream, rendition,
-- device, cdn, region, network), each the full value for its window; a
-- dimension the source does not know is ''. Definitions and sources:
-- pipelines/src/jobs/qoe/qoe_minutes.sql. A window re-emitted after late
-- events carries a higher `version`; read with FINAL or argMax(..., version).
CREATE TABLE IF NOT EXISTS qoe_minutes
(
    window_start DateTime,
    window_end DateTime,
    stream_id String,
    rendition String,
    device String,
    cdn String,
    region String,
    network String,
    views UInt64,
    attempts UInt64,
    plays UInt64,
    startup_p50_ms Nullable(Float64),
    startup_p90_ms Nullable(Float64),
    startup_p99_ms Nullable(Float64),
    watch_ms UInt64,
    stalls UInt64,
    stall_ms UInt64,
    rebuffer_ratio Nullable(Float64),
    rebuffers_per_minute Nullable(Float64),
    avg_bitrate_kbps Nullable(Float64),
    peak_bitrate_kbps Nullable(UInt32),
    up_switches UInt64,
    down_switches UInt64,
    dropped_frames UInt64,
    latency_ms Nullable(Float64),
    fatal_errors UInt64,
    requests UInt64,
    failed_requests UInt64,
    starvations UInt64,
    media_ms UInt64,
    cmcd_avg_bitrate_kbps Nullable(Float64),
    cmcd_peak_bitrate_kbps Nullable(UInt64),
    throughput_kbps Nullable(Float64),
    cmcd_latency_ms Nullable(Float64),
    ttfb_ms Nullable(Float64),
    events UInt64,
    version UInt64,
    emitted_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (stream_id, window_start, rendition, device, cdn, region, network);
