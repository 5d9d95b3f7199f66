-- name: top_chatters
-- description: The viewers who sent the most chat messages, per stream, in a time range.
-- param: from DateTime start of the range of client time, inclusive (epoch seconds, or 'YYYY-MM-DD hh:mm:ss' in the server time zone)
-- param: to DateTime end of the range, exclusive
-- param: per_stream UInt32 how many chatters to list per stream
SELECT
    stream_id,
    viewer_id,
    count() AS messages
FROM events FINAL
WHERE event_type = 'chat'
  AND event = 'message'
  AND ts >= toDateTime(?)
  AND ts < toDateTime(?)
GROUP BY stream_id, viewer_id
ORDER BY stream_id, messages DESC, viewer_id
LIMIT ? BY stream_id
