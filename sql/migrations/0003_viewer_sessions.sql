-- The engagement job's viewer sessions: per (stream, viewer), a run of
-- events with no silence of 30 s or longer. One row per session, keyed by
-- its first event. A session re-emitted after late events carries a higher
-- `version`. When a late event moves a session's start (or joins two
-- sessions), the row under the old start is retracted by a row with
-- `events = 0` and the highest version; read with
-- `FINAL ... WHERE events > 0`.
CREATE TABLE IF NOT EXISTS viewer_sessions
(
    session_start DateTime,
    stream_id String,
    viewer_id String,
    session_start_ms Int64,
    last_event_ms Int64,
    duration_ms UInt64,
    watch_ms UInt64,
    chat_messages UInt64,
    interactions UInt64,
    gift_value_cents UInt64,
    events UInt64,
    version UInt64,
    emitted_ms Int64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(session_start)
ORDER BY (stream_id, viewer_id, session_start_ms);
