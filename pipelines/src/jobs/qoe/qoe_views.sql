-- Quality of experience per view: one playback session (session_id; the
-- CMCD `sid` of requests) of one stream, ended by a minute without any of
-- its events (session(interval '1 minute') in the job).
--
-- A view's figures come from its player events when it has any, else from
-- the CMCD its player sent with every request to the origin (a player
-- without an SDK): see the README for which figure comes from where.
--   played             player: a `playing` event; CMCD: a segment delivered whole
--   startup_ms         player: `startup_ms`; CMCD: `msd` (v2), else from the
--                      first request to the last byte of the first segment
--   start_failure      player: a fatal error before the first frame; CMCD: no
--                      segment delivered and a request failed (status >= 400)
--   playback_failure   player: a fatal error after the first frame
--   exit_before_start  neither played nor failed, and lasted 1 s or more
--   watch_ms           player: time played; CMCD: media duration delivered
--   stalls, stall_ms   player: `stall_end` events; CMCD: `bs` flags (no length)
--   avg/peak/start_bitrate_kbps  player: the playing rendition (time-weighted,
--                      highest, at `playing`); CMCD: `br` of delivered segments
--                      (weighted by `d`, highest, of the first)
--   scores             the published per-view scores (udfs crate); startup
--                      and smoothness only for views that played, quality
--                      only where the player reports upscaling
--   events             rows in the view; grows with late corrections and so
--                      serves as the version. 0 marks a retraction.
SELECT
    window_start,
    stream_id,
    session_id,
    viewer_id,
    device,
    cdn,
    region,
    network,
    first_event_ms,
    last_event_ms,
    player_events,
    requests,
    played,
    start_failure,
    playback_failure,
    NOT played AND NOT start_failure AND last_event_ms - first_event_ms >= 1000 AS exit_before_start,
    startup_ms,
    watch_ms,
    stalls,
    stall_ms,
    CAST(stall_ms AS DOUBLE) / NULLIF(watch_ms, 0) AS rebuffer_ratio,
    avg_bitrate_kbps,
    peak_bitrate_kbps,
    start_bitrate_kbps,
    up_switches,
    down_switches,
    dropped_frames,
    latency_ms,
    throughput_kbps,
    CASE WHEN played THEN startup_score(startup_ms) END AS startup_score,
    CASE WHEN played THEN smoothness_score(stalls, COALESCE(CAST(stall_ms AS DOUBLE) / NULLIF(watch_ms, 0), 0)) END AS smoothness_score,
    quality_score(upscale_max_pct, upscale_avg_pct) AS quality_score,
    CASE WHEN events > 0 THEN success_score(played, start_failure OR playback_failure) END AS success_score,
    events
FROM (
    SELECT
        *,
        CASE WHEN player_events > 0 THEN first_frame_ms IS NOT NULL
             ELSE first_media_ms IS NOT NULL END AS played,
        CASE WHEN player_events > 0
             THEN first_fatal_ms IS NOT NULL AND (first_frame_ms IS NULL OR first_fatal_ms < first_frame_ms)
             ELSE first_media_ms IS NULL AND failed_requests > 0 END AS start_failure,
        first_fatal_ms IS NOT NULL AND first_frame_ms IS NOT NULL AND first_fatal_ms >= first_frame_ms AS playback_failure,
        CASE WHEN player_events > 0 THEN player_startup_ms
             ELSE COALESCE(CAST(cmcd_msd AS BIGINT), first_media_ms - first_event_ms) END AS startup_ms,
        CASE WHEN player_events > 0 THEN player_watch_ms ELSE media_ms END AS watch_ms,
        CASE WHEN player_events > 0 THEN player_stalls ELSE starvations END AS stalls,
        CASE WHEN player_events > 0 THEN player_stall_ms END AS stall_ms,
        CASE WHEN player_events > 0 THEN CAST(bitrate_played AS DOUBLE) / NULLIF(heartbeat_played_ms, 0)
             ELSE CAST(bitrate_media AS DOUBLE) / NULLIF(media_ms, 0) END AS avg_bitrate_kbps,
        CASE WHEN player_events > 0 THEN player_peak_kbps ELSE CAST(cmcd_peak_kbps AS BIGINT) END AS peak_bitrate_kbps,
        -- The first segment's `br`: the minimum of (ts * 2^20 + br) is the earliest.
        CASE WHEN player_events > 0 THEN player_start_kbps ELSE first_segment_br % 1048576 END AS start_bitrate_kbps,
        CASE WHEN player_events > 0 THEN player_dropped_frames ELSE COALESCE(cmcd_dropped_frames, 0) END AS dropped_frames,
        CASE WHEN player_events > 0 THEN CAST(latency_sum AS DOUBLE) / NULLIF(latency_count, 0)
             ELSE CAST(ltc_sum AS DOUBLE) / NULLIF(ltc_count, 0) END AS latency_ms,
        CAST(mtp_sum AS DOUBLE) / NULLIF(mtp_count, 0) AS throughput_kbps,
        CAST(upscale_played AS DOUBLE) / NULLIF(upscale_weight, 0) AS upscale_avg_pct
    FROM (
        SELECT
            window_start,
            stream_id,
            session_id,
            MIN(ts) AS first_event_ms,
            MAX(ts) AS last_event_ms,
            MAX(viewer_id) AS viewer_id,
            MAX(device) AS device,
            MAX(cdn) AS cdn,
            MAX(region) AS region,
            MAX(client_cohort) AS network,
            COUNT(*) FILTER (WHERE event_type = 'player') AS player_events,
            COUNT(*) FILTER (WHERE event_type = 'request') AS requests,
            MIN(ts) FILTER (WHERE event = 'playing') AS first_frame_ms,
            MAX(CAST(startup_ms AS BIGINT)) AS player_startup_ms,
            MIN(ts) FILTER (WHERE event = 'error' AND fatal) AS first_fatal_ms,
            COUNT(*) FILTER (WHERE event = 'stall_end') AS player_stalls,
            COALESCE(SUM(stall_ms), 0) AS player_stall_ms,
            COALESCE(SUM(played_ms), 0) AS player_watch_ms,
            SUM(CAST(bitrate_kbps AS BIGINT) * played_ms) FILTER (WHERE event = 'heartbeat') AS bitrate_played,
            SUM(played_ms) FILTER (WHERE event = 'heartbeat') AS heartbeat_played_ms,
            MAX(CAST(bitrate_kbps AS BIGINT)) AS player_peak_kbps,
            MAX(CAST(bitrate_kbps AS BIGINT)) FILTER (WHERE event = 'playing') AS player_start_kbps,
            COUNT(*) FILTER (WHERE event = 'bitrate_change' AND bitrate_kbps > previous_bitrate_kbps) AS up_switches,
            COUNT(*) FILTER (WHERE event = 'bitrate_change' AND bitrate_kbps < previous_bitrate_kbps) AS down_switches,
            COALESCE(SUM(dropped_frames), 0) AS player_dropped_frames,
            SUM(latency_ms) AS latency_sum,
            COUNT(latency_ms) AS latency_count,
            SUM(CAST(upscale_pct AS BIGINT) * played_ms) FILTER (WHERE event = 'heartbeat') AS upscale_played,
            SUM(played_ms) FILTER (WHERE event = 'heartbeat' AND upscale_pct IS NOT NULL) AS upscale_weight,
            MAX(CAST(upscale_pct AS BIGINT)) AS upscale_max_pct,
            MIN(ts + CAST(ttlb_us / 1000 AS BIGINT)) FILTER (WHERE event = 'segment' AND complete AND status = 200) AS first_media_ms,
            MAX(cmcd_msd) AS cmcd_msd,
            COUNT(*) FILTER (WHERE event_type = 'request' AND status >= 400) AS failed_requests,
            COUNT(*) FILTER (WHERE cmcd_bs) AS starvations,
            SUM(cmcd_d) FILTER (WHERE event = 'segment' AND complete AND status = 200) AS media_ms,
            SUM(cmcd_br * cmcd_d) FILTER (WHERE event = 'segment' AND complete AND status = 200) AS bitrate_media,
            MAX(cmcd_br) FILTER (WHERE event = 'segment' AND complete AND status = 200) AS cmcd_peak_kbps,
            MIN(ts * 1048576 + CAST(cmcd_br AS BIGINT)) FILTER (WHERE event = 'segment' AND complete AND status = 200) AS first_segment_br,
            MAX(cmcd_dfa) AS cmcd_dropped_frames,
            SUM(cmcd_mtp) AS mtp_sum,
            COUNT(cmcd_mtp) AS mtp_count,
            SUM(cmcd_ltc) AS ltc_sum,
            COUNT(cmcd_ltc) AS ltc_count,
            COUNT(*) AS events
        FROM window_events
        WHERE session_id IS NOT NULL
        GROUP BY window_start, stream_id, session_id
    )
)
