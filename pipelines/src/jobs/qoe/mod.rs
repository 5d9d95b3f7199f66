//! The QoE job: quality of experience from player events and from the CMCD
//! the players sent with their requests to the origin, per view (a
//! playback session, ended by a minute of silence) and per minute for each
//! stream x rendition x device x cdn x region x network. Definitions and
//! which figure comes from which source: `qoe_minutes.sql` and
//! `qoe_views.sql`.

mod requests;

use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use livepulse_contract::tables;
use livepulse_contract::topics::{self, Topic};
use livepulse_sql::{QoeMinuteRow, QoeViewRow};

use super::{Job, SessionQuery, epoch_seconds};
use crate::runtime::columns::Columns;
use crate::runtime::window::WindowSpec;
use crate::sinks::row_binary::RawTable;

/// The QoE job.
#[derive(Debug, Clone, Default)]
pub struct Qoe;

impl Job for Qoe {
    type Row = QoeMinuteRow;

    fn name(&self) -> &'static str {
        "qoe"
    }

    fn topics(&self) -> Vec<Topic> {
        vec![topics::PLAYER_EVENTS, topics::PLAYBACK_REQUESTS]
    }

    fn windows(&self) -> &'static [&'static str] {
        &["tumble(interval '1 minute')"]
    }

    fn sql(&self) -> &str {
        include_str!("qoe_minutes.sql")
    }

    fn table(&self) -> &'static str {
        tables::QOE_MINUTES
    }

    fn rows(
        &self,
        result: &[RecordBatch],
        window: WindowSpec,
        emitted_ms: i64,
    ) -> Result<Vec<QoeMinuteRow>, ArrowError> {
        let mut rows = Vec::new();
        for batch in result {
            let c = Columns::new(batch);
            let starts = c.i64("window_start")?;
            let [stream, rendition, device, cdn, region, network] = [
                "stream_id",
                "rendition",
                "device",
                "cdn",
                "region",
                "network",
            ]
            .map(|name| c.string(name));
            let (stream, rendition, device) = (stream?, rendition?, device?);
            let (cdn, region, network) = (cdn?, region?, network?);
            let [
                views,
                attempts,
                plays,
                watch,
                stalls,
                stall_ms,
                up,
                down,
                dropped,
                fatal,
                requests,
                failed,
                starvations,
                media,
                events,
            ] = [
                "views",
                "attempts",
                "plays",
                "watch_ms",
                "stalls",
                "stall_ms",
                "up_switches",
                "down_switches",
                "dropped_frames",
                "fatal_errors",
                "requests",
                "failed_requests",
                "starvations",
                "media_ms",
                "events",
            ]
            .map(|name| c.u64(name));
            let (views, attempts, plays, watch, stalls) =
                (views?, attempts?, plays?, watch?, stalls?);
            let (stall_ms, up, down, dropped, fatal) = (stall_ms?, up?, down?, dropped?, fatal?);
            let (requests, failed, starvations, media, events) =
                (requests?, failed?, starvations?, media?, events?);
            let [
                p50,
                p90,
                p99,
                ratio,
                per_minute,
                avg,
                latency,
                cmcd_avg,
                mtp,
                ltc,
                ttfb,
            ] = [
                "startup_p50_ms",
                "startup_p90_ms",
                "startup_p99_ms",
                "rebuffer_ratio",
                "rebuffers_per_minute",
                "avg_bitrate_kbps",
                "latency_ms",
                "cmcd_avg_bitrate_kbps",
                "throughput_kbps",
                "cmcd_latency_ms",
                "ttfb_ms",
            ]
            .map(|name| c.opt_f64(name));
            let (p50, p90, p99, ratio, per_minute, avg) =
                (p50?, p90?, p99?, ratio?, per_minute?, avg?);
            let (latency, cmcd_avg, mtp, ltc, ttfb) = (latency?, cmcd_avg?, mtp?, ltc?, ttfb?);
            let peak = c.opt_u32("peak_bitrate_kbps")?;
            let cmcd_peak = c.opt_u64("cmcd_peak_bitrate_kbps")?;
            for i in 0..batch.num_rows() {
                rows.push(QoeMinuteRow {
                    window_start: epoch_seconds(starts[i]),
                    window_end: epoch_seconds(starts[i] + window.width_ms()),
                    stream_id: stream[i].clone(),
                    rendition: rendition[i].clone(),
                    device: device[i].clone(),
                    cdn: cdn[i].clone(),
                    region: region[i].clone(),
                    network: network[i].clone(),
                    views: views[i],
                    attempts: attempts[i],
                    plays: plays[i],
                    startup_p50_ms: p50[i],
                    startup_p90_ms: p90[i],
                    startup_p99_ms: p99[i],
                    watch_ms: watch[i],
                    stalls: stalls[i],
                    stall_ms: stall_ms[i],
                    rebuffer_ratio: ratio[i],
                    rebuffers_per_minute: per_minute[i],
                    avg_bitrate_kbps: avg[i],
                    peak_bitrate_kbps: peak[i],
                    up_switches: up[i],
                    down_switches: down[i],
                    dropped_frames: dropped[i],
                    latency_ms: latency[i],
                    fatal_errors: fatal[i],
                    requests: requests[i],
                    failed_requests: failed[i],
                    starvations: starvations[i],
                    media_ms: media[i],
                    cmcd_avg_bitrate_kbps: cmcd_avg[i],
                    cmcd_peak_bitrate_kbps: cmcd_peak[i],
                    throughput_kbps: mtp[i],
                    cmcd_latency_ms: ltc[i],
                    ttfb_ms: ttfb[i],
                    events: events[i],
                    // More rows means a more complete window.
                    version: events[i],
                    emitted_ms,
                });
            }
        }
        Ok(rows)
    }

    type SessionRow = QoeViewRow;

    fn sessions(&self) -> Option<SessionQuery> {
        Some(SessionQuery {
            window: "session(interval '1 minute')",
            sql: include_str!("qoe_views.sql"),
            table: tables::QOE_VIEWS,
        })
    }

    fn session_rows(
        &self,
        result: &[RecordBatch],
        emitted_ms: i64,
    ) -> Result<Vec<QoeViewRow>, ArrowError> {
        let mut rows = Vec::new();
        for batch in result {
            let c = Columns::new(batch);
            let starts = c.i64("window_start")?;
            let stream = c.string("stream_id")?;
            let session = c.string("session_id")?;
            let [viewer, device, cdn, region, network] =
                ["viewer_id", "device", "cdn", "region", "network"].map(|name| c.opt_string(name));
            let (viewer, device, cdn, region, network) =
                (viewer?, device?, cdn?, region?, network?);
            let last = c.opt_i64("last_event_ms")?;
            let [
                player_events,
                requests,
                watch,
                stalls,
                up,
                down,
                dropped,
                events,
            ] = [
                "player_events",
                "requests",
                "watch_ms",
                "stalls",
                "up_switches",
                "down_switches",
                "dropped_frames",
                "events",
            ]
            .map(|name| c.u64(name));
            let (player_events, requests, watch, stalls) =
                (player_events?, requests?, watch?, stalls?);
            let (up, down, dropped, events) = (up?, down?, dropped?, events?);
            let [played, start_failure, playback_failure, exit_before_start] = [
                "played",
                "start_failure",
                "playback_failure",
                "exit_before_start",
            ]
            .map(|name| c.opt_bool(name));
            let (played, start_failure) = (played?, start_failure?);
            let (playback_failure, exit_before_start) = (playback_failure?, exit_before_start?);
            let startup = c.opt_i64("startup_ms")?;
            let [stall_ms, peak, start_bitrate] =
                ["stall_ms", "peak_bitrate_kbps", "start_bitrate_kbps"].map(|name| c.opt_u64(name));
            let (stall_ms, peak, start_bitrate) = (stall_ms?, peak?, start_bitrate?);
            let [
                ratio,
                avg,
                latency,
                mtp,
                startup_score,
                smoothness,
                quality,
                success,
            ] = [
                "rebuffer_ratio",
                "avg_bitrate_kbps",
                "latency_ms",
                "throughput_kbps",
                "startup_score",
                "smoothness_score",
                "quality_score",
                "success_score",
            ]
            .map(|name| c.opt_f64(name));
            let (ratio, avg, latency, mtp) = (ratio?, avg?, latency?, mtp?);
            let (startup_score, smoothness, quality, success) =
                (startup_score?, smoothness?, quality?, success?);
            let text = |v: &[Option<String>], i: usize| v[i].clone().unwrap_or_default();
            for i in 0..batch.num_rows() {
                rows.push(QoeViewRow {
                    view_start: epoch_seconds(starts[i]),
                    stream_id: stream[i].clone(),
                    session_id: session[i].clone(),
                    viewer_id: text(&viewer, i),
                    device: text(&device, i),
                    cdn: text(&cdn, i),
                    region: text(&region, i),
                    network: text(&network, i),
                    first_event_ms: starts[i],
                    last_event_ms: last[i].unwrap_or(starts[i]),
                    player_events: player_events[i],
                    requests: requests[i],
                    played: played[i].unwrap_or(false),
                    start_failure: start_failure[i].unwrap_or(false),
                    playback_failure: playback_failure[i].unwrap_or(false),
                    exit_before_start: exit_before_start[i].unwrap_or(false),
                    startup_ms: startup[i],
                    watch_ms: watch[i],
                    stalls: stalls[i],
                    stall_ms: stall_ms[i],
                    rebuffer_ratio: ratio[i],
                    avg_bitrate_kbps: avg[i],
                    peak_bitrate_kbps: peak[i],
                    start_bitrate_kbps: start_bitrate[i],
                    up_switches: up[i],
                    down_switches: down[i],
                    dropped_frames: dropped[i],
                    latency_ms: latency[i],
                    throughput_kbps: mtp[i],
                    startup_score: startup_score[i],
                    smoothness_score: smoothness[i],
                    quality_score: quality[i],
                    success_score: success[i],
                    events: events[i],
                    // A retraction (no events) outranks every row of its start.
                    version: if events[i] == 0 { u64::MAX } else { events[i] },
                    emitted_ms,
                });
            }
        }
        Ok(rows)
    }

    /// Only the requests: the engagement job keeps the player events.
    fn raw_table(&self) -> &'static RawTable {
        &requests::PLAYBACK_REQUESTS
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use livepulse_contract::record::Payload;

    use super::*;
    use crate::runtime::processor::{Lateness, Processor};
    use crate::sinks::row_binary::RowBinary;

    const T: i64 = 1_700_000_040_000;

    fn player(n: u32, ts: i64, fields: &str) -> String {
        format!(
            r#"{{"event_id":"00000000-0000-4000-8000-{n:012}","ts":{ts},"stream_id":"s","type":"player",
            "session_id":"p1","viewer_id":"v1","device":"tv","region":"eu",{fields}}}"#
        )
    }

    fn request(n: u32, ts: i64, object: &str, kind: &str, cmcd: &str) -> String {
        format!(
            r#"{{"request_id":"10000000-0000-4000-8000-{n:012}","received_ms":{ts},"stream_id":"s",
            "rendition":"720p","object":"{object}","object_kind":"{kind}","status":200,"bytes_sent":9,
            "complete":true,"ttfb_us":2000,"ttlb_us":40000,"client_cohort":"203.0.113.0/24","cmcd":{{"session_id":"c1",{cmcd}}}}}"#
        )
    }

    #[tokio::test]
    async fn a_player_view_and_a_cmcd_view_become_rows() {
        let lateness = Lateness {
            allowed_ms: 0,
            correction_horizon_ms: 60_000,
            idle_timeout: Duration::from_secs(1),
        };
        let mut processor = Processor::new(Qoe, lateness).await.unwrap();
        let events = [
            player(1, T, r#""event":"start""#),
            player(
                2,
                T + 1_500,
                r#""event":"playing","startup_ms":1500,"bitrate_kbps":1200"#,
            ),
            player(
                3,
                T + 11_500,
                r#""event":"heartbeat","bitrate_kbps":1200,"buffer_ms":9000,"played_ms":10000,"upscale_pct":50"#,
            ),
            player(4, T + 12_000, r#""event":"stall_end","stall_ms":500"#),
            player(
                5,
                T + 12_100,
                r#""event":"bitrate_change","bitrate_kbps":800,"previous_bitrate_kbps":1200"#,
            ),
            player(
                6,
                T + 21_500,
                r#""event":"heartbeat","bitrate_kbps":800,"buffer_ms":9000,"played_ms":9500,"upscale_pct":50"#,
            ),
        ];
        let record = format!(
            r#"{{"schema_version":1,"received_ms":{T},"events":[{}]}}"#,
            events.join(",")
        );
        processor
            .read(Payload::Events, record.as_bytes(), 0, 0)
            .unwrap();
        let requests = [
            request(
                1,
                T,
                "master.m3u8",
                "playlist",
                r#""object_type":"m","startup":true"#,
            ),
            request(
                2,
                T + 100,
                "seg1.m4s",
                "segment",
                r#""encoded_bitrate_kbps":986,"object_duration_ms":1000,"startup":true,"measured_throughput_kbps":5000"#,
            ),
            request(
                3,
                T + 1_100,
                "seg2.m4s",
                "segment",
                r#""encoded_bitrate_kbps":2000,"object_duration_ms":1000,"buffer_starvation":true,"measured_throughput_kbps":3000"#,
            ),
        ];
        let record = format!(
            r#"{{"schema_version":1,"requests":[{}]}}"#,
            requests.join(",")
        );
        processor
            .read(Payload::PlaybackRequests, record.as_bytes(), 1, 0)
            .unwrap();
        let mut raw = RowBinary::default();
        processor.ingest(&mut raw).await.unwrap();
        assert_eq!(raw.rows(), 3, "only the requests are kept raw");
        let emission = processor.close(i64::MAX / 2, 0).await.unwrap();

        let mut views = emission.session_rows.clone();
        views.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        let (cmcd, player) = (&views[0], &views[1]);
        assert_eq!(
            (
                cmcd.session_id.as_str(),
                cmcd.network.as_str(),
                cmcd.requests
            ),
            ("c1", "203.0.113.0/24", 3)
        );
        assert!(cmcd.played && !cmcd.start_failure && !cmcd.exit_before_start);
        // First request to the last byte of the first segment: 100 + 40 ms.
        assert_eq!(cmcd.startup_ms, Some(140));
        assert_eq!(
            (cmcd.watch_ms, cmcd.stalls, cmcd.stall_ms),
            (2_000, 1, None)
        );
        assert_eq!(cmcd.avg_bitrate_kbps, Some(1_493.0));
        assert_eq!(
            (cmcd.peak_bitrate_kbps, cmcd.start_bitrate_kbps),
            (Some(2_000), Some(986))
        );
        assert_eq!(cmcd.throughput_kbps, Some(4_000.0));
        assert_eq!(cmcd.success_score, Some(100.0));

        assert_eq!(
            (
                player.session_id.as_str(),
                player.device.as_str(),
                player.player_events
            ),
            ("p1", "tv", 6)
        );
        assert_eq!(player.startup_ms, Some(1_500));
        assert_eq!(
            (player.watch_ms, player.stalls, player.stall_ms),
            (19_500, 1, Some(500))
        );
        assert_eq!((player.up_switches, player.down_switches), (0, 1));
        let weighted = (1_200.0 * 10_000.0 + 800.0 * 9_500.0) / 19_500.0;
        assert_eq!(player.avg_bitrate_kbps, Some(weighted));
        assert_eq!(player.start_bitrate_kbps, Some(1_200));
        assert_eq!(
            player.startup_score,
            Some(livepulse_udfs::startup_score(1_500.0))
        );
        let ratio = 500.0 / 19_500.0;
        assert_eq!(player.rebuffer_ratio, Some(ratio));
        assert_eq!(
            player.smoothness_score,
            Some(livepulse_udfs::smoothness_score(1, ratio))
        );
        assert_eq!(
            player.quality_score,
            Some(livepulse_udfs::quality_score(50.0, 50.0))
        );

        // One minute, two groups: the player's (device tv) and the requests'
        // (network 203.0.113.0/24, rendition 720p).
        let minutes = &emission.rows;
        let by_device = |d: &str| minutes.iter().filter(|r| r.device == d).collect::<Vec<_>>();
        let tv: u64 = by_device("tv").iter().map(|r| r.events).sum();
        assert_eq!(tv, 6);
        let cmcd_minute = minutes
            .iter()
            .find(|r| r.network == "203.0.113.0/24")
            .unwrap();
        assert_eq!(
            (
                cmcd_minute.rendition.as_str(),
                cmcd_minute.requests,
                cmcd_minute.starvations,
                cmcd_minute.media_ms
            ),
            ("720p", 3, 1, 2_000)
        );
        let playing = minutes.iter().find(|r| r.plays == 1).unwrap();
        assert_eq!(playing.startup_p50_ms, Some(1_500.0));
    }
}
