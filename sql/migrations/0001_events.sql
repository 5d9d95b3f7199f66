-- Every accepted event, one row each, in the column order of the contract's
-- Arrow event schema. Client time is kept twice: `ts` (seconds) drives the
-- daily partitions and is what analysts filter on, `ts_ms` keeps the
-- precision. A replayed or duplicated event has the same sorting key
-- (stream_id, ts, event_id), so it collapses on merge; read with FINAL for
-- exact counts.
CREATE TABLE IF NOT EXISTS events
(
    event_id String,
    ts DateTime,
    ts_ms Int64,
    received_ms Int64,
    stream_id String,
    event_type String,
    event String,
    session_id Nullable(String),
    viewer_id Nullable(String),
    device Nullable(String),
    player Nullable(String),
    cdn Nullable(String),
    region Nullable(String),
    startup_ms Nullable(UInt32),
    bitrate_kbps Nullable(UInt32),
    buffer_ms Nullable(UInt32),
    rendition Nullable(String),
    dropped_frames Nullable(UInt32),
    played_ms Nullable(UInt32),
    stall_ms Nullable(UInt32),
    code Nullable(String),
    fatal Nullable(UInt8),
    text Nullable(String),
    gift_id Nullable(String),
    count Nullable(UInt32),
    value_cents Nullable(UInt64),
    creator_id Nullable(String),
    title Nullable(String),
    category Nullable(String)
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (stream_id, ts, event_id);
