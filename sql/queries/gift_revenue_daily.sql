-- name: gift_revenue_daily
-- description: Gift events, gifts sent, distinct gifters and revenue per stream per day.
-- param: from Date first day, inclusive ('YYYY-MM-DD', days of the server time zone)
-- param: to Date last day, inclusive
-- assumeNotNull with isNotNull keeps `gifters` UInt64 on 18.16 too.
SELECT
    toDate(ts) AS day,
    stream_id,
    count() AS gift_events,
    sum(ifNull(count, 0)) AS gifts,
    uniqExactIf(assumeNotNull(viewer_id), isNotNull(viewer_id)) AS gifters,
    sum(ifNull(value_cents, 0)) AS revenue_cents
FROM events FINAL
WHERE event_type = 'chat'
  AND event = 'gift'
  AND toDate(ts) >= toDate(?)
  AND toDate(ts) <= toDate(?)
GROUP BY day, stream_id
ORDER BY day, revenue_cents DESC, stream_id
