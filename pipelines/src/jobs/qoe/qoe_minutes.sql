-- Quality of experience per (1 min window, stream, rendition, device, cdn,
-- region, network).
--
-- Input: window_events, the de-duplicated player events (event_type
-- 'player') and playback requests logged by the origin (event_type
-- 'request', CMCD in the cmcd_* columns), with window_start (epoch ms).
-- Player events carry device, cdn and region but no network; requests carry
-- the network (an IPv4 /24 or IPv6 /48) and the CMCD cdn but no device or
-- region; an absent dimension is ''. Figures from player events:
--   views                 distinct sessions with any event in the window (both sources)
--   attempts, plays       `start` and `playing` events
--   startup_p*_ms         video startup time of the `playing` events (exact percentiles)
--   watch_ms              time played (heartbeats, ends)
--   stalls, stall_ms      `stall_end` events and their length
--   rebuffer_ratio        stall_ms / watch_ms; rebuffers_per_minute per minute watched
--   avg/peak_bitrate_kbps of the playing rendition, weighted by time played
--   up/down_switches      `bitrate_change` above / below the previous bitrate
--   dropped_frames, latency_ms (mean live latency), fatal_errors
-- Figures from requests (CMCD):
--   requests, failed_requests (status >= 400), starvations (`bs`)
--   media_ms              media duration (`d`) of the segments delivered whole
--   cmcd_avg/peak_bitrate_kbps  `br` of those segments, weighted by `d`
--   throughput_kbps       mean `mtp`; cmcd_latency_ms mean `ltc` (CMCD v2)
--   ttfb_ms               mean time to the first byte of a segment
--   events                rows in the window; grows with late corrections and
--                         so serves as the row's version
-- views counts distinct_key(session_id), 64-bit keys (see engagement.sql).
SELECT
    window_start,
    stream_id,
    COALESCE(rendition, '') AS rendition,
    COALESCE(device, '') AS device,
    COALESCE(cdn, '') AS cdn,
    COALESCE(region, '') AS region,
    COALESCE(client_cohort, '') AS network,
    COUNT(DISTINCT distinct_key(session_id)) AS views,
    COUNT(*) FILTER (WHERE event_type = 'player' AND event = 'start') AS attempts,
    COUNT(*) FILTER (WHERE event = 'playing') AS plays,
    percentile_cont(0.5) WITHIN GROUP (ORDER BY CAST(startup_ms AS DOUBLE)) AS startup_p50_ms,
    percentile_cont(0.9) WITHIN GROUP (ORDER BY CAST(startup_ms AS DOUBLE)) AS startup_p90_ms,
    percentile_cont(0.99) WITHIN GROUP (ORDER BY CAST(startup_ms AS DOUBLE)) AS startup_p99_ms,
    COALESCE(SUM(played_ms), 0) AS watch_ms,
    COUNT(*) FILTER (WHERE event = 'stall_end') AS stalls,
    COALESCE(SUM(stall_ms), 0) AS stall_ms,
    CAST(COALESCE(SUM(stall_ms), 0) AS DOUBLE) / NULLIF(SUM(played_ms), 0) AS rebuffer_ratio,
    COUNT(*) FILTER (WHERE event = 'stall_end') * 60000.0 / NULLIF(SUM(played_ms), 0) AS rebuffers_per_minute,
    CAST(SUM(CAST(bitrate_kbps AS BIGINT) * played_ms) FILTER (WHERE event = 'heartbeat') AS DOUBLE)
        / NULLIF(SUM(played_ms) FILTER (WHERE event = 'heartbeat'), 0) AS avg_bitrate_kbps,
    MAX(bitrate_kbps) AS peak_bitrate_kbps,
    COUNT(*) FILTER (WHERE event = 'bitrate_change' AND bitrate_kbps > previous_bitrate_kbps) AS up_switches,
    COUNT(*) FILTER (WHERE event = 'bitrate_change' AND bitrate_kbps < previous_bitrate_kbps) AS down_switches,
    COALESCE(SUM(dropped_frames), 0) AS dropped_frames,
    AVG(CAST(latency_ms AS DOUBLE)) AS latency_ms,
    COUNT(*) FILTER (WHERE event = 'error' AND fatal) AS fatal_errors,
    COUNT(*) FILTER (WHERE event_type = 'request') AS requests,
    COUNT(*) FILTER (WHERE event_type = 'request' AND status >= 400) AS failed_requests,
    COUNT(*) FILTER (WHERE cmcd_bs) AS starvations,
    COALESCE(SUM(cmcd_d) FILTER (WHERE event = 'segment' AND complete AND status = 200), 0) AS media_ms,
    CAST(SUM(cmcd_br * cmcd_d) FILTER (WHERE event = 'segment' AND complete AND status = 200) AS DOUBLE)
        / NULLIF(SUM(cmcd_d) FILTER (WHERE event = 'segment' AND complete AND status = 200), 0) AS cmcd_avg_bitrate_kbps,
    MAX(cmcd_br) FILTER (WHERE event = 'segment' AND complete AND status = 200) AS cmcd_peak_bitrate_kbps,
    AVG(CAST(cmcd_mtp AS DOUBLE)) AS throughput_kbps,
    AVG(CAST(cmcd_ltc AS DOUBLE)) AS cmcd_latency_ms,
    AVG(CAST(ttfb_us AS DOUBLE) / 1000.0) FILTER (WHERE event = 'segment') AS ttfb_ms,
    COUNT(*) AS events
FROM window_events
GROUP BY
    window_start,
    stream_id,
    COALESCE(rendition, ''),
    COALESCE(device, ''),
    COALESCE(cdn, ''),
    COALESCE(region, ''),
    COALESCE(client_cohort, '')
