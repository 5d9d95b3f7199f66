-- name: top_live_streams
-- description: Streams with windows in the last N minutes, ranked by their latest concurrent viewers.
-- param: window_seconds UInt32 window length to read, e.g. 60
-- param: minutes UInt32 how far back a window may start, minutes before now()
-- param: limit UInt32 how many streams
-- The inner query keeps the latest version of each window (argMax by
-- version); the outer one takes each stream's most recent window.
SELECT
    stream_id,
    argMax(viewers, window_start) AS current_viewers,
    max(viewers) AS peak_viewers,
    max(window_start) AS last_window_start
FROM
(
    SELECT
        stream_id,
        window_start,
        argMax(concurrent_viewers, version) AS viewers
    FROM stream_engagement
    WHERE window_seconds = ?
      AND window_start >= now() - 60 * ?
    GROUP BY stream_id, window_start
)
GROUP BY stream_id
ORDER BY current_viewers DESC, stream_id
LIMIT ?
