-- name: chat_activity
-- description: Chat messages, distinct chatters and likes per stream in a time range (events, deduplicated).
-- param: from DateTime start of the range of client time, inclusive (epoch seconds, or 'YYYY-MM-DD hh:mm:ss' in the server time zone)
-- param: to DateTime end of the range, exclusive
-- assumeNotNull with isNotNull: on a Nullable column, 18.16's uniqExact
-- returns Nullable(UInt64) where newer servers return UInt64.
SELECT
    stream_id,
    countIf(event = 'message') AS messages,
    uniqExactIf(assumeNotNull(viewer_id), event = 'message' AND isNotNull(viewer_id)) AS chatters,
    countIf(event = 'like') AS likes,
    if(chatters = 0, 0, round(messages / chatters, 2)) AS messages_per_chatter
FROM events FINAL
WHERE event_type = 'chat'
  AND ts >= toDateTime(?)
  AND ts < toDateTime(?)
GROUP BY stream_id
ORDER BY messages DESC, stream_id
