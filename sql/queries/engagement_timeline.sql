-- name: engagement_timeline
-- description: Per-minute engagement of one stream (latest version of each window, via FINAL).
-- param: stream_id String the stream
-- param: window_seconds UInt32 window length to read, a divisor of 60 (60 gives one window per minute)
-- param: from DateTime first minute, inclusive (epoch seconds, or 'YYYY-MM-DD hh:mm:ss' in the server time zone)
-- param: to DateTime end, exclusive
-- Counters add up across the windows of a minute; viewer counts are the
-- minute's peak window (exact when window_seconds = 60). Under FINAL, filter
-- only on sorting-key columns: they are equal in every version of a row.
SELECT
    toStartOfMinute(window_start) AS minute,
    max(concurrent_viewers) AS peak_concurrent_viewers,
    max(unique_viewers) AS peak_unique_viewers,
    sum(watch_ms) AS watch_ms,
    sum(chat_messages) AS chat_messages,
    max(chatters) AS peak_chatters,
    sum(likes) AS likes,
    sum(gifts) AS gifts,
    sum(gift_value_cents) AS gift_value_cents,
    sum(follows) AS follows,
    sum(subscriptions) AS subscriptions,
    sum(shares) AS shares,
    sum(interactions) AS interactions,
    sum(events) AS events
FROM stream_engagement FINAL
WHERE stream_id = ?
  AND window_seconds = ?
  AND window_start >= toDateTime(?)
  AND window_start < toDateTime(?)
GROUP BY minute
ORDER BY minute
