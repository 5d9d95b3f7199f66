-- The engagement job's output: one row per (window, stream), each row the
-- full value for its window. A window re-emitted after late events carries a
-- higher `version` and replaces the earlier row on merge; read with FINAL or
-- argMax(..., version).
CREATE TABLE IF NOT EXISTS stream_engagement
(
    window_start DateTime,
    window_end DateTime,
    window_seconds UInt32,
    stream_id String,
    concurrent_viewers UInt64,
    unique_viewers UInt64,
    watch_ms UInt64,
    chat_messages UInt64,
    chatters UInt64,
    likes UInt64,
    gifts UInt64,
    gift_value_cents UInt64,
    follows UInt64,
    subscriptions UInt64,
    shares UInt64,
    interactions UInt64,
    interaction_rate Nullable(Float64),
    events UInt64,
    version UInt64,
    emitted_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_seconds, stream_id, window_start);
