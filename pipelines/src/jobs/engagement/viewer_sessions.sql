-- Viewer sessions per (session, stream, viewer): a viewer's player and chat
-- events on one stream, ended by 30 s without any (the window is declared
-- as session(interval '30 seconds') in the job).
--
-- Input: window_events, the de-duplicated events; window_start is the
-- session's first event (epoch ms). Definitions:
--   session_start_ms  the session's first event; last_event_ms its last
--   watch_ms          sum of played_ms: time spent playing
--   chat_messages     chat messages sent
--   interactions      chat-family events: messages, likes, gifts, follows,
--                     subscriptions and shares
--   gift_value_cents  value of the gifts sent
--   events            events in the session; grows with late corrections and
--                     so serves as the row's version. 0 marks a retraction.
SELECT
    window_start,
    stream_id,
    viewer_id,
    MIN(ts) AS session_start_ms,
    MAX(ts) AS last_event_ms,
    COALESCE(SUM(played_ms), 0) AS watch_ms,
    COUNT(*) FILTER (WHERE event = 'message') AS chat_messages,
    COUNT(*) FILTER (WHERE event_type = 'chat') AS interactions,
    COALESCE(SUM(value_cents) FILTER (WHERE event = 'gift'), 0) AS gift_value_cents,
    COUNT(*) AS events
FROM window_events
WHERE viewer_id IS NOT NULL
GROUP BY window_start, stream_id, viewer_id
