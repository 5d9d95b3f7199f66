-- Views by the minute they began, per (stream, device, cdn, region,
-- network): the view-level figures of a minute (attempts, plays, start
-- failures, exits before start, playback failures, startup percentiles and
-- the mean per-view scores). Startup percentiles are quantileExact: the
-- value at rank floor(n * q), not interpolated. A view's row is final once
-- it ended (a minute of silence), so the newest minutes still grow.
CREATE VIEW IF NOT EXISTS qoe_view_minutes AS
SELECT
    CAST(toStartOfMinute(view_start) AS DateTime) AS minute,
    stream_id,
    device,
    cdn,
    region,
    network,
    count() AS attempts,
    sum(played) AS plays,
    sum(start_failure) AS start_failures,
    sum(exit_before_start) AS exits_before_start,
    sum(playback_failure) AS playback_failures,
    100 * sum(start_failure) / count() AS start_failure_pct,
    100 * sum(exit_before_start) / count() AS exit_before_start_pct,
    if(sum(played) = 0, NULL, 100 * sum(playback_failure) / sum(played)) AS playback_failure_pct,
    quantileExactIf(0.5)(startup_ms, played = 1) AS startup_p50_ms,
    quantileExactIf(0.9)(startup_ms, played = 1) AS startup_p90_ms,
    avgIf(startup_score, played = 1) AS startup_score,
    avgIf(smoothness_score, played = 1) AS smoothness_score,
    avg(quality_score) AS quality_score,
    avg(success_score) AS success_score
FROM qoe_views FINAL
WHERE events > 0
GROUP BY minute, stream_id, device, cdn, region, network;
