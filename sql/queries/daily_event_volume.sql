-- name: daily_event_volume
-- description: Accepted events per day by family and kind, with the number of streams they came from.
-- param: from Date first day, inclusive ('YYYY-MM-DD', days of the server time zone)
-- param: to Date last day, inclusive
SELECT
    toDate(ts) AS day,
    event_type,
    event,
    count() AS events,
    uniqExact(stream_id) AS streams
FROM events FINAL
WHERE toDate(ts) >= toDate(?)
  AND toDate(ts) <= toDate(?)
GROUP BY day, event_type, event
ORDER BY day, event_type, event
