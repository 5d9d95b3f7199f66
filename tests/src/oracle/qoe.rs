//! Batch recomputation of the QoE job: the player events and the playback
//! requests as accepted (repeats of an id count once), grouped at once per
//! minute with Polars, and split into views by silence in a single pass,
//! without watermarks, panes or session state. The definitions are those of
//! `pipelines/src/jobs/qoe/*.sql`; the per-view scores are the `udfs`
//! crate's plain functions.

use std::collections::{BTreeMap, HashSet};

use livepulse_contract::playback::PlaybackRequest;
use livepulse_contract::{Event, Family, Kind};
use livepulse_sql::{QoeMinuteRow, QoeViewRow};
use livepulse_udfs::{quality_score, smoothness_score, startup_score, success_score};
use polars::prelude::*;

use super::{i64_column, string_column};

/// The gap that ends a view.
pub const VIEW_GAP_MS: i64 = 60_000;
const MINUTE_MS: i64 = 60_000;

/// One input row of either source, as the job's SQL sees it.
#[derive(Debug, Clone, Default)]
struct Row {
    ts: i64,
    stream: String,
    session: Option<String>,
    viewer: Option<String>,
    request: bool,
    kind: String,
    rendition: Option<String>,
    device: Option<String>,
    cdn: Option<String>,
    region: Option<String>,
    network: Option<String>,
    startup_ms: Option<u32>,
    played_ms: Option<u32>,
    stall_ms: Option<u32>,
    bitrate: Option<u32>,
    previous_bitrate: Option<u32>,
    dropped: Option<u32>,
    latency: Option<u32>,
    upscale: Option<u32>,
    fatal: bool,
    status: u32,
    complete: bool,
    ttfb_us: Option<u64>,
    ttlb_us: Option<u64>,
    br: Option<u64>,
    d: Option<u64>,
    mtp: Option<u64>,
    ltc: Option<u64>,
    msd: Option<u64>,
    dfa: Option<u64>,
    bs: bool,
}

impl Row {
    /// A segment delivered whole.
    fn delivered(&self) -> bool {
        self.request && self.kind == "segment" && self.complete && self.status == 200
    }
}

/// The rows the job reads: player events and requests, each id once.
fn rows(events: &[Event<'_>], requests: &[PlaybackRequest]) -> Vec<Row> {
    let mut seen = HashSet::new();
    let mut out: Vec<Row> = events
        .iter()
        .filter(|e| e.family == Some(Family::Player) && seen.insert(e.event_id.to_string()))
        .map(|e| Row {
            ts: e.ts,
            stream: e.stream_id.to_string(),
            session: e.session_id.as_deref().map(str::to_owned),
            viewer: e.viewer_id.as_deref().map(str::to_owned),
            kind: e.event.map(Kind::as_str).unwrap_or_default().to_owned(),
            rendition: e.rendition.as_deref().map(str::to_owned),
            device: e.device.as_deref().map(str::to_owned),
            cdn: e.cdn.as_deref().map(str::to_owned),
            region: e.region.as_deref().map(str::to_owned),
            startup_ms: e.startup_ms,
            played_ms: e.played_ms,
            stall_ms: e.stall_ms,
            bitrate: e.bitrate_kbps,
            previous_bitrate: e.previous_bitrate_kbps,
            dropped: e.dropped_frames,
            latency: e.latency_ms,
            upscale: e.upscale_pct,
            fatal: e.fatal == Some(true),
            ..Row::default()
        })
        .collect();
    out.extend(
        requests
            .iter()
            .filter(|r| seen.insert(r.request_id.clone()))
            .map(|r| {
                let cmcd = r.cmcd.clone().unwrap_or_default();
                Row {
                    ts: r.received_ms,
                    stream: r.stream_id.clone(),
                    session: cmcd.session_id,
                    request: true,
                    kind: r.object_kind.as_str().to_owned(),
                    rendition: r.rendition.clone(),
                    cdn: cmcd.cdn,
                    network: Some(r.client_cohort.clone()),
                    status: u32::from(r.status),
                    complete: r.complete,
                    ttfb_us: r.ttfb_us,
                    ttlb_us: r.ttlb_us,
                    br: cmcd.encoded_bitrate_kbps,
                    d: cmcd.object_duration_ms,
                    mtp: cmcd.measured_throughput_kbps,
                    ltc: cmcd.live_latency_ms,
                    msd: cmcd.media_start_delay_ms,
                    dfa: cmcd.dropped_frames,
                    bs: cmcd.buffer_starvation == Some(true),
                    ..Row::default()
                }
            }),
    );
    out
}

/// Every row of the QoE job's per-minute table, sorted by (stream, window
/// start, rendition, device, cdn, region, network); `emitted_ms` is 0.
pub fn qoe_minutes(
    events: &[Event<'_>],
    requests: &[PlaybackRequest],
) -> PolarsResult<Vec<QoeMinuteRow>> {
    let rows = rows(events, requests);
    let text = |f: fn(&Row) -> &Option<String>| {
        rows.iter()
            .map(|r| f(r).clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let u32s = |f: fn(&Row) -> Option<u32>| rows.iter().map(f).collect::<Vec<_>>();
    let u64s = |f: fn(&Row) -> Option<u64>| rows.iter().map(f).collect::<Vec<_>>();
    let frame = df!(
        "window_start" => rows.iter().map(|r| r.ts - r.ts.rem_euclid(MINUTE_MS)).collect::<Vec<_>>(),
        "stream_id" => rows.iter().map(|r| r.stream.clone()).collect::<Vec<_>>(),
        "rendition" => text(|r| &r.rendition),
        "device" => text(|r| &r.device),
        "cdn" => text(|r| &r.cdn),
        "region" => text(|r| &r.region),
        "network" => text(|r| &r.network),
        "session_id" => rows.iter().map(|r| r.session.clone()).collect::<Vec<_>>(),
        "request" => rows.iter().map(|r| r.request).collect::<Vec<_>>(),
        "kind" => rows.iter().map(|r| r.kind.clone()).collect::<Vec<_>>(),
        "startup_ms" => u32s(|r| r.startup_ms).into_iter().map(|v| v.map(f64::from)).collect::<Vec<_>>(),
        "played_ms" => u32s(|r| r.played_ms).into_iter().map(|v| v.map(u64::from)).collect::<Vec<_>>(),
        "stall_ms" => u32s(|r| r.stall_ms).into_iter().map(|v| v.map(u64::from)).collect::<Vec<_>>(),
        "bitrate" => u32s(|r| r.bitrate),
        "bitrate_played" => rows.iter().map(|r| match (r.kind.as_str(), r.bitrate, r.played_ms) {
            ("heartbeat", Some(b), Some(p)) => Some(i64::from(b) * i64::from(p)),
            _ => None,
        }).collect::<Vec<_>>(),
        "heartbeat_played" => rows.iter().map(|r| (r.kind == "heartbeat").then_some(r.played_ms.map(u64::from)).flatten()).collect::<Vec<_>>(),
        "up" => rows.iter().map(|r| r.kind == "bitrate_change" && matches!((r.bitrate, r.previous_bitrate), (Some(b), Some(p)) if b > p)).collect::<Vec<_>>(),
        "down" => rows.iter().map(|r| r.kind == "bitrate_change" && matches!((r.bitrate, r.previous_bitrate), (Some(b), Some(p)) if b < p)).collect::<Vec<_>>(),
        "dropped" => u32s(|r| r.dropped).into_iter().map(|v| v.map(u64::from)).collect::<Vec<_>>(),
        "latency" => u32s(|r| r.latency).into_iter().map(|v| v.map(f64::from)).collect::<Vec<_>>(),
        "fatal" => rows.iter().map(|r| r.kind == "error" && r.fatal).collect::<Vec<_>>(),
        "failed" => rows.iter().map(|r| r.request && r.status >= 400).collect::<Vec<_>>(),
        "bs" => rows.iter().map(|r| r.bs).collect::<Vec<_>>(),
        "media" => rows.iter().map(|r| if r.delivered() { r.d } else { None }).collect::<Vec<_>>(),
        "bitrate_media" => rows.iter().map(|r| if r.delivered() { r.br.zip(r.d).map(|(b, d)| b * d) } else { None }).collect::<Vec<_>>(),
        "cmcd_br" => rows.iter().map(|r| if r.delivered() { r.br } else { None }).collect::<Vec<_>>(),
        "mtp" => u64s(|r| r.mtp).into_iter().map(|v| v.map(|v| v as f64)).collect::<Vec<_>>(),
        "ltc" => u64s(|r| r.ltc).into_iter().map(|v| v.map(|v| v as f64)).collect::<Vec<_>>(),
        "ttfb_ms" => rows.iter().map(|r| if r.kind == "segment" { r.ttfb_us.map(|t| t as f64 / 1000.0) } else { None }).collect::<Vec<_>>(),
    )?;
    let count = |condition: Expr, name: &str| condition.cast(DataType::UInt64).sum().alias(name);
    let is = |column: &str, value: &str| col(column).eq(lit(value.to_owned()));
    let sum0 = |column: &str, name: &str| {
        col(column)
            .sum()
            .fill_null(lit(0u64))
            .cast(DataType::UInt64)
            .alias(name)
    };
    let quantile = |q: f64, name: &str| {
        col("startup_ms")
            .drop_nulls()
            .quantile(lit(q), QuantileMethod::Linear)
            .alias(name)
    };
    let keys = [
        "window_start",
        "stream_id",
        "rendition",
        "device",
        "cdn",
        "region",
        "network",
    ];
    let result = frame
        .lazy()
        .group_by(keys.map(col))
        .agg([
            col("session_id")
                .drop_nulls()
                .n_unique()
                .cast(DataType::UInt64)
                .alias("views"),
            count(col("request").not().and(is("kind", "start")), "attempts"),
            count(is("kind", "playing"), "plays"),
            quantile(0.5, "p50"),
            quantile(0.9, "p90"),
            quantile(0.99, "p99"),
            sum0("played_ms", "watch_ms"),
            count(is("kind", "stall_end"), "stalls"),
            sum0("stall_ms", "stall_ms"),
            col("bitrate_played").sum().alias("bitrate_played"),
            col("heartbeat_played").sum().alias("heartbeat_played"),
            col("heartbeat_played").count().alias("heartbeats"),
            col("bitrate").max().alias("peak"),
            count(col("up"), "up"),
            count(col("down"), "down"),
            sum0("dropped", "dropped"),
            col("latency").mean().alias("latency"),
            count(col("fatal"), "fatal"),
            count(col("request"), "requests"),
            count(col("failed"), "failed"),
            count(col("bs"), "starvations"),
            sum0("media", "media_ms"),
            col("media").count().alias("media_count"),
            col("bitrate_media").sum().alias("bitrate_media"),
            col("cmcd_br").max().alias("cmcd_peak"),
            col("mtp").mean().alias("mtp"),
            col("ltc").mean().alias("ltc"),
            col("ttfb_ms").mean().alias("ttfb"),
            len().cast(DataType::UInt64).alias("events"),
        ])
        .sort(keys, SortMultipleOptions::default())
        .collect()?;

    // Polars counts are u32 (its index type); every count is read as u64.
    let u64s = |name: &str| -> PolarsResult<Vec<u64>> {
        Ok(result
            .column(name)?
            .cast(&DataType::UInt64)?
            .u64()?
            .iter()
            .map(|v| v.unwrap_or(0))
            .collect())
    };
    let f64s = |name: &str| -> PolarsResult<Vec<Option<f64>>> {
        Ok(result
            .column(name)?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .collect())
    };
    let starts = i64_column(&result, "window_start")?;
    let [stream, rendition, device, cdn, region, network] = [
        "stream_id",
        "rendition",
        "device",
        "cdn",
        "region",
        "network",
    ]
    .map(|name| string_column(&result, name));
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
    ] = [
        "views", "attempts", "plays", "watch_ms", "stalls", "stall_ms", "up", "down", "dropped",
        "fatal",
    ]
    .map(u64s);
    let (views, attempts, plays, watch, stalls) = (views?, attempts?, plays?, watch?, stalls?);
    let (stall_ms, up, down, dropped, fatal) = (stall_ms?, up?, down?, dropped?, fatal?);
    let [
        requests,
        failed,
        starvations,
        media,
        media_count,
        heartbeats,
        events,
    ] = [
        "requests",
        "failed",
        "starvations",
        "media_ms",
        "media_count",
        "heartbeats",
        "events",
    ]
    .map(u64s);
    let (requests, failed, starvations, media) = (requests?, failed?, starvations?, media?);
    let (media_count, heartbeats, events) = (media_count?, heartbeats?, events?);
    let [
        p50,
        p90,
        p99,
        bitrate_played,
        heartbeat_played,
        peak,
        latency,
    ] = [
        "p50",
        "p90",
        "p99",
        "bitrate_played",
        "heartbeat_played",
        "peak",
        "latency",
    ]
    .map(f64s);
    let (p50, p90, p99, bitrate_played) = (p50?, p90?, p99?, bitrate_played?);
    let (heartbeat_played, peak, latency) = (heartbeat_played?, peak?, latency?);
    let [bitrate_media, cmcd_peak, mtp, ltc, ttfb] =
        ["bitrate_media", "cmcd_peak", "mtp", "ltc", "ttfb"].map(f64s);
    let (bitrate_media, cmcd_peak, mtp, ltc, ttfb) =
        (bitrate_media?, cmcd_peak?, mtp?, ltc?, ttfb?);

    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    };
    Ok((0..result.height())
        .map(|i| {
            let start = u32::try_from(starts[i] / 1_000).unwrap_or(0);
            let watch_f = Some(watch[i] as f64);
            QoeMinuteRow {
                window_start: start,
                window_end: start + 60,
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
                rebuffer_ratio: ratio(Some(stall_ms[i] as f64), watch_f),
                rebuffers_per_minute: ratio(Some(stalls[i] as f64 * 60_000.0), watch_f),
                avg_bitrate_kbps: if heartbeats[i] > 0 {
                    ratio(bitrate_played[i], heartbeat_played[i])
                } else {
                    None
                },
                peak_bitrate_kbps: peak[i].map(|p| p as u32),
                up_switches: up[i],
                down_switches: down[i],
                dropped_frames: dropped[i],
                latency_ms: latency[i],
                fatal_errors: fatal[i],
                requests: requests[i],
                failed_requests: failed[i],
                starvations: starvations[i],
                media_ms: media[i],
                cmcd_avg_bitrate_kbps: if media_count[i] > 0 {
                    ratio(bitrate_media[i], Some(media[i] as f64))
                } else {
                    None
                },
                cmcd_peak_bitrate_kbps: cmcd_peak[i].map(|p| p as u64),
                throughput_kbps: mtp[i],
                cmcd_latency_ms: ltc[i],
                ttfb_ms: ttfb[i],
                events: events[i],
                version: events[i],
                emitted_ms: 0,
            }
        })
        .collect())
}

/// Every view of the QoE job, sorted by (stream, session, first event);
/// `emitted_ms` is 0.
pub fn qoe_views(events: &[Event<'_>], requests: &[PlaybackRequest]) -> Vec<QoeViewRow> {
    let mut by_session: BTreeMap<(String, String), Vec<Row>> = BTreeMap::new();
    for row in rows(events, requests) {
        if let Some(session) = row.session.clone() {
            by_session
                .entry((row.stream.clone(), session))
                .or_default()
                .push(row);
        }
    }
    let mut views = Vec::new();
    for ((stream, session), mut rows) in by_session {
        rows.sort_by_key(|r| r.ts);
        let mut start = 0;
        for i in 1..=rows.len() {
            if i == rows.len() || rows[i].ts - rows[i - 1].ts >= VIEW_GAP_MS {
                views.push(view(&stream, &session, &rows[start..i]));
                start = i;
            }
        }
    }
    views
}

/// One view's row from its rows (sorted by time).
fn view(stream: &str, session: &str, rows: &[Row]) -> QoeViewRow {
    let max_text = |f: fn(&Row) -> &Option<String>| {
        rows.iter()
            .filter_map(|r| f(r).clone())
            .max()
            .unwrap_or_default()
    };
    let player: Vec<&Row> = rows.iter().filter(|r| !r.request).collect();
    let delivered: Vec<&Row> = rows.iter().filter(|r| r.delivered()).collect();
    let (first, last) = (rows[0].ts, rows[rows.len() - 1].ts);
    let first_of = |kind: &str| player.iter().filter(|r| r.kind == kind).map(|r| r.ts).min();
    let first_frame = first_of("playing");
    let first_fatal = player
        .iter()
        .filter(|r| r.kind == "error" && r.fatal)
        .map(|r| r.ts)
        .min();
    let sum32 = |f: fn(&Row) -> Option<u32>| -> u64 {
        player.iter().filter_map(|r| f(r)).map(u64::from).sum()
    };
    let heartbeats: Vec<&&Row> = player.iter().filter(|r| r.kind == "heartbeat").collect();
    let first_media = delivered
        .iter()
        .map(|r| r.ts + (r.ttlb_us.unwrap_or_default() / 1000) as i64)
        .min();
    let failed_requests = rows.iter().filter(|r| r.request && r.status >= 400).count();
    let media: Option<u64> =
        (!delivered.is_empty()).then(|| delivered.iter().filter_map(|r| r.d).sum());
    let mean = |values: Vec<f64>| {
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let has_player = !player.is_empty();

    let played = if has_player {
        first_frame.is_some()
    } else {
        first_media.is_some()
    };
    let start_failure = if has_player {
        first_fatal.is_some_and(|f| first_frame.is_none_or(|p| f < p))
    } else {
        first_media.is_none() && failed_requests > 0
    };
    let playback_failure = matches!((first_fatal, first_frame), (Some(f), Some(p)) if f >= p);
    let startup_ms = if has_player {
        player
            .iter()
            .filter_map(|r| r.startup_ms)
            .max()
            .map(i64::from)
    } else {
        let msd = rows.iter().filter_map(|r| r.msd).max();
        msd.map(|m| m as i64).or(first_media.map(|m| m - first))
    };
    let watch_ms = if has_player {
        sum32(|r| r.played_ms)
    } else {
        media.unwrap_or(0)
    };
    let stalls = if has_player {
        player.iter().filter(|r| r.kind == "stall_end").count() as u64
    } else {
        rows.iter().filter(|r| r.bs).count() as u64
    };
    let stall_ms = has_player.then(|| sum32(|r| r.stall_ms));
    let rebuffer_ratio = stall_ms
        .filter(|_| watch_ms > 0)
        .map(|s| s as f64 / watch_ms as f64);
    let avg_bitrate_kbps = if has_player {
        let weight: u64 = heartbeats
            .iter()
            .filter_map(|r| r.played_ms)
            .map(u64::from)
            .sum();
        let weighted: i64 = heartbeats
            .iter()
            .filter_map(|r| Some(i64::from(r.bitrate?) * i64::from(r.played_ms?)))
            .sum();
        (!heartbeats.is_empty() && weight > 0).then(|| weighted as f64 / weight as f64)
    } else {
        let weighted: u64 = delivered.iter().filter_map(|r| Some(r.br? * r.d?)).sum();
        media.filter(|m| *m > 0).map(|m| weighted as f64 / m as f64)
    };
    let peak_bitrate_kbps = if has_player {
        player.iter().filter_map(|r| r.bitrate).max().map(u64::from)
    } else {
        delivered.iter().filter_map(|r| r.br).max()
    };
    let start_bitrate_kbps = if has_player {
        player
            .iter()
            .filter(|r| r.kind == "playing")
            .filter_map(|r| r.bitrate)
            .max()
            .map(u64::from)
    } else {
        delivered
            .iter()
            .filter_map(|r| Some((r.ts, r.br?)))
            .min()
            .map(|(_, br)| br)
    };
    let switches = |up: bool| {
        player
            .iter()
            .filter(|r| r.kind == "bitrate_change")
            .filter(|r| match (r.bitrate, r.previous_bitrate) {
                (Some(b), Some(p)) => {
                    if up {
                        b > p
                    } else {
                        b < p
                    }
                }
                _ => false,
            })
            .count() as u64
    };
    let dropped_frames = if has_player {
        sum32(|r| r.dropped)
    } else {
        rows.iter().filter_map(|r| r.dfa).max().unwrap_or(0)
    };
    let latency_ms = if has_player {
        mean(
            player
                .iter()
                .filter_map(|r| r.latency)
                .map(f64::from)
                .collect(),
        )
    } else {
        mean(
            rows.iter()
                .filter_map(|r| r.ltc)
                .map(|v| v as f64)
                .collect(),
        )
    };
    let throughput_kbps = mean(
        rows.iter()
            .filter_map(|r| r.mtp)
            .map(|v| v as f64)
            .collect(),
    );
    let upscale_weight: u64 = heartbeats
        .iter()
        .filter(|r| r.upscale.is_some())
        .filter_map(|r| r.played_ms)
        .map(u64::from)
        .sum();
    let upscale_weighted: i64 = heartbeats
        .iter()
        .filter_map(|r| Some(i64::from(r.upscale?) * i64::from(r.played_ms?)))
        .sum();
    let has_upscale = heartbeats
        .iter()
        .any(|r| r.upscale.is_some() && r.played_ms.is_some());
    let upscale_avg = (has_upscale && upscale_weight > 0)
        .then(|| upscale_weighted as f64 / upscale_weight as f64);
    let upscale_max = player.iter().filter_map(|r| r.upscale).max().map(f64::from);
    let events = rows.len() as u64;
    QoeViewRow {
        view_start: u32::try_from(first.div_euclid(1_000)).unwrap_or(0),
        stream_id: stream.to_owned(),
        session_id: session.to_owned(),
        viewer_id: max_text(|r| &r.viewer),
        device: max_text(|r| &r.device),
        cdn: max_text(|r| &r.cdn),
        region: max_text(|r| &r.region),
        network: max_text(|r| &r.network),
        first_event_ms: first,
        last_event_ms: last,
        player_events: player.len() as u64,
        requests: (rows.len() - player.len()) as u64,
        played,
        start_failure,
        playback_failure,
        exit_before_start: !played && !start_failure && last - first >= 1_000,
        startup_ms,
        watch_ms,
        stalls,
        stall_ms,
        rebuffer_ratio,
        avg_bitrate_kbps,
        peak_bitrate_kbps,
        start_bitrate_kbps,
        up_switches: switches(true),
        down_switches: switches(false),
        dropped_frames,
        latency_ms,
        throughput_kbps,
        startup_score: startup_ms
            .filter(|_| played)
            .map(|s| startup_score(s as f64)),
        smoothness_score: played
            .then(|| smoothness_score(stalls as i64, rebuffer_ratio.unwrap_or(0.0))),
        quality_score: upscale_max
            .zip(upscale_avg)
            .map(|(max, avg)| quality_score(max, avg)),
        success_score: Some(success_score(played, start_failure || playback_failure)),
        events,
        version: events,
        emitted_ms: 0,
    }
}
