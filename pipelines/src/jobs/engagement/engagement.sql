-- Engagement per (window, stream).
--
-- Input: window_events, the de-duplicated events of the closing windows,
-- with window_start (epoch ms). Definitions:
--   concurrent_viewers  distinct player sessions with any player event in the window
--   unique_viewers      distinct viewer ids with a player or chat event
--   watch_ms            sum of played_ms (heartbeats and ends): time spent playing
--   chatters            distinct viewer ids that sent a chat message
--   gifts               gifts sent (sum of count); gift_value_cents their value
--   interactions        chat-family events: messages, likes, gifts, follows,
--                       subscriptions and shares (a gift event counts once)
--   interaction_rate    interactions per concurrent viewer; NULL without viewers
--   events              events in the window; grows with late corrections and
--                       so serves as the row's ReplacingMergeTree version
-- Distinct counts are over distinct_key(id), 64-bit keys: integer sets merge
-- several times faster than string sets, and two ids of one window share a
-- key with a chance of about n^2 / 2^65 (1e-9 at 200,000 viewers).
SELECT
    window_start,
    stream_id,
    COUNT(DISTINCT distinct_key(session_id)) FILTER (WHERE event_type = 'player') AS concurrent_viewers,
    COUNT(DISTINCT distinct_key(viewer_id)) AS unique_viewers,
    COALESCE(SUM(played_ms), 0) AS watch_ms,
    COUNT(*) FILTER (WHERE event = 'message') AS chat_messages,
    COUNT(DISTINCT distinct_key(viewer_id)) FILTER (WHERE event = 'message') AS chatters,
    COUNT(*) FILTER (WHERE event_type = 'chat' AND event = 'like') AS likes,
    COALESCE(SUM("count") FILTER (WHERE event = 'gift'), 0) AS gifts,
    COALESCE(SUM(value_cents) FILTER (WHERE event = 'gift'), 0) AS gift_value_cents,
    COUNT(*) FILTER (WHERE event = 'follow') AS follows,
    COUNT(*) FILTER (WHERE event = 'subscribe') AS subscriptions,
    COUNT(*) FILTER (WHERE event = 'share') AS shares,
    COUNT(*) FILTER (WHERE event_type = 'chat') AS interactions,
    interaction_rate(
        COUNT(*) FILTER (WHERE event_type = 'chat'),
        COUNT(DISTINCT distinct_key(session_id)) FILTER (WHERE event_type = 'player')
    ) AS interaction_rate,
    COUNT(*) AS events
FROM window_events
GROUP BY window_start, stream_id
