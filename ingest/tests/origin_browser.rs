//! A real viewer: ffmpeg publishes two renditions over HTTP PUT while hls.js
//! plays the stream in headless Chromium with CMCD on; the player's every
//! request must be in the request log with what it said and what the
//! server measured, and the QoE job, fed only by that log (hls.js has no
//! livepulse SDK), must find in ClickHouse the view the player made.
//!
//! Needs Debian's `chromium` and the npm packages of `tests/browser`
//! (`dev/setup` installs both).

#[allow(dead_code)] // each test binary uses a different part of it
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::broker;
use common::origin::{KEY, Running, STREAM, config, ffmpeg_fmp4, playback_requests};
use livepulse_connectors::clickhouse::ClickHouseConfig;
use livepulse_contract::playback::ObjectKind;
use livepulse_contract::tables;
use livepulse_pipelines::jobs::qoe::Qoe;
use livepulse_pipelines::{Pipeline, PipelineConfig};
use livepulse_sql::{QoeMinuteRow, QoeViewRow};
use serde::Deserialize;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// Seconds the player plays.
const PLAY_SECONDS: u32 = 6;
const SESSION: &str = "browser-session-1";

/// What `play.mjs` reports.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Played {
    current_time: f64,
    first_frame_ms: Option<f64>,
    /// `BANDWIDTH` of each rendition switched to, bits/s.
    bitrates: Vec<u64>,
    fatal: Vec<String>,
}

/// `rendition -> BANDWIDTH` (bits/s) from a master playlist.
fn bandwidths(master: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut bandwidth = None;
    for line in master.lines().map(str::trim) {
        if let Some(attributes) = line.strip_prefix("#EXT-X-STREAM-INF:") {
            bandwidth = attributes
                .split(',')
                .find_map(|a| a.strip_prefix("BANDWIDTH="))
                .map(|b| b.parse().unwrap());
        } else if !line.is_empty() && !line.starts_with('#') {
            let rendition = line.split('/').next().unwrap().to_owned();
            out.insert(rendition, bandwidth.take().unwrap());
        }
    }
    out
}

/// hls.js rounds `BANDWIDTH` (bits/s) to kbps in CMCD `br`.
fn kbps(bandwidth: u64) -> u64 {
    (bandwidth + 500) / 1000
}

/// ClickHouse rows matching `filter`, newest versions only (`FINAL`), in
/// the order of their first column.
async fn rows<T>(clickhouse: &ClickHouseConfig, table: &str, filter: &str) -> Vec<T>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    let query = format!("SELECT ?fields FROM {table} FINAL WHERE {filter} ORDER BY 1");
    clickhouse
        .client()
        .query(&query)
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("reading {table}: {e}"))
}

async fn play(url: &str, screenshot: &Path) -> Played {
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        driver.join("node_modules/hls.js").exists(),
        "npm packages missing: run dev/setup (npm ci in {})",
        driver.display()
    );
    let output = Command::new("node")
        .current_dir(&driver)
        .arg("play.mjs")
        .args([url, SESSION, &PLAY_SECONDS.to_string()])
        .arg(screenshot)
        .kill_on_drop(true)
        .output()
        .await
        .expect("node is not installed: run dev/setup");
    assert!(
        output.status.success(),
        "the player failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "player output {:?}: {e}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_in_chromium_plays_the_live_stream_and_its_requests_are_logged() {
    let (_dir, _broker, kafka) = broker().await;
    let (_clickhouse_dir, server) = livepulse_embedded::testing::clickhouse().await;
    let clickhouse = ClickHouseConfig {
        url: server.http_url(),
        database: "livepulse".into(),
        user: server.writer().user.clone(),
        password: server.writer().password.clone(),
    };
    livepulse_sql::migrate(&clickhouse).await.unwrap();
    let checkpoints = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let qoe = Pipeline::new(
        PipelineConfig {
            checkpoint_dir: checkpoints.path().to_owned(),
            idle_timeout_ms: 1_000,
            ..PipelineConfig::default()
        },
        kafka.clone(),
        clickhouse.clone(),
        Qoe,
    );
    let qoe = tokio::spawn(qoe.run(shutdown.clone()));
    let origin = Running::start(config(), &kafka).await;
    let base = origin.base.clone();
    let publisher = tokio::spawn(async move { ffmpeg_fmp4(&base, KEY, 30).await });

    // Live once the master and two segments of each rendition are there.
    let master_path = format!("/hls/{STREAM}/master.m3u8");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let master = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stream never went live"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let response = origin.get(&master_path).await;
        if response.status() != 200 {
            continue;
        }
        let master = response.text().await.unwrap();
        let mut ready = true;
        for rendition in bandwidths(&master).keys() {
            let playlist = origin
                .get(&format!("/hls/{STREAM}/{rendition}/index.m3u8"))
                .await;
            ready &= playlist.status() == 200
                && playlist.text().await.unwrap().matches("#EXTINF").count() >= 2;
        }
        if ready {
            break master;
        }
    };
    let bandwidths = bandwidths(&master);
    assert_eq!(bandwidths.len(), 2, "{master}");

    // Kept after the run for a look at what the player showed.
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("origin_browser.png");
    let played = play(&origin.url(&master_path), &screenshot).await;
    println!("screenshot: {}", screenshot.display());
    publisher.abort();

    assert!(played.fatal.is_empty(), "player errors: {:?}", played.fatal);
    assert!(
        played.current_time >= f64::from(PLAY_SECONDS) - 3.0,
        "video time advanced only to {} s in {PLAY_SECONDS} s",
        played.current_time
    );
    let first_frame_ms = played.first_frame_ms.expect("a first frame");
    assert!(first_frame_ms > 0.0);
    assert!(!played.bitrates.is_empty(), "no rendition chosen");
    let png = std::fs::read(&screenshot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // A black or empty frame compresses to a few KiB; the test picture does not.
    assert!(png.len() > 20_000, "screenshot of {} bytes", png.len());

    // Every request the player made, with what it said in CMCD.
    let (requests, raw) = playback_requests(&kafka, |requests| {
        requests
            .iter()
            .filter(|r| r.cmcd.as_ref().and_then(|c| c.session_id.as_deref()) == Some(SESSION))
            .filter(|r| r.object_kind == ObjectKind::Segment)
            .count()
            >= 4
    })
    .await;
    let session: Vec<_> = requests
        .iter()
        .filter(|r| r.cmcd.as_ref().and_then(|c| c.session_id.as_deref()) == Some(SESSION))
        .collect();
    assert!(
        session
            .iter()
            .any(|r| r.object == "master.m3u8" && r.object_kind == ObjectKind::Playlist),
        "the master playlist request is logged"
    );
    for request in &session {
        assert_eq!(request.stream_id, STREAM);
        assert_eq!(request.status, 200, "{request:?}");
        assert_eq!(request.client_cohort, "127.0.0.0/24");
        let cmcd = request.cmcd.as_ref().unwrap();
        assert_eq!(cmcd.content_id.as_deref(), Some("livepulse-browser-test"));
        assert_eq!(cmcd.streaming_format.as_deref(), Some("h"));
        if request.object_kind == ObjectKind::Segment {
            // The bitrate the player fetched is that of the rendition it
            // played (hls.js rounds BANDWIDTH to kbps).
            let rendition = request.rendition.as_deref().unwrap();
            assert_eq!(
                cmcd.encoded_bitrate_kbps,
                Some(kbps(bandwidths[rendition])),
                "{request:?}"
            );
            assert!(played.bitrates.contains(&bandwidths[rendition]));
            assert!(request.ttlb_us >= request.ttfb_us);
            assert_eq!(cmcd.stream_type.as_deref(), Some("l"));
        }
    }
    assert!(
        session
            .iter()
            .any(|r| r.cmcd.as_ref().unwrap().startup == Some(true)),
        "startup requests carry `su`"
    );
    // Nothing in the log could lead back to the viewer's address.
    assert!(
        raw.iter()
            .all(|v| !String::from_utf8_lossy(v).contains("127.0.0.1"))
    );

    // The view closes once the watermark (the wall clock, the topics being
    // idle) is a minute past its last request.
    let session_filter = format!("session_id = '{SESSION}' AND events > 0");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    let views: Vec<QoeViewRow> = loop {
        let views = rows(&clickhouse, tables::QOE_VIEWS, &session_filter).await;
        if !views.is_empty() || tokio::time::Instant::now() > deadline {
            break views;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let [view] = views.as_slice() else {
        panic!(
            "one view of {SESSION} expected in {}: {views:?}",
            tables::QOE_VIEWS
        );
    };
    let peak_fetched = session
        .iter()
        .filter(|r| r.object_kind == ObjectKind::Segment)
        .filter_map(|r| r.cmcd.as_ref()?.encoded_bitrate_kbps)
        .max();
    assert_eq!(
        (view.stream_id.as_str(), view.network.as_str()),
        (STREAM, "127.0.0.0/24")
    );
    assert_eq!(view.player_events, 0, "hls.js sends no player events");
    assert!(view.requests >= session.len() as u64, "{view:?}");
    assert!(
        view.played && !view.start_failure && !view.playback_failure,
        "{view:?}"
    );
    assert!(!view.exit_before_start, "{view:?}");
    assert!(view.startup_ms.is_some_and(|ms| ms > 0), "{view:?}");
    assert_eq!(
        view.start_bitrate_kbps,
        Some(kbps(played.bitrates[0])),
        "the first rendition played: {view:?}"
    );
    assert_eq!(view.peak_bitrate_kbps, peak_fetched, "{view:?}");
    assert_eq!(view.success_score, Some(100.0), "{view:?}");
    assert!(
        view.watch_ms > 0 && view.startup_score.is_some(),
        "{view:?}"
    );

    // Per minute and rendition: the bitrate the player fetched there.
    let minutes: Vec<QoeMinuteRow> = rows(
        &clickhouse,
        tables::QOE_MINUTES,
        &format!("stream_id = '{STREAM}' AND network = '127.0.0.0/24' AND media_ms > 0"),
    )
    .await;
    assert!(
        !minutes.is_empty(),
        "no minute rows for the player's network"
    );
    for minute in &minutes {
        assert_eq!(
            minute.cmcd_peak_bitrate_kbps,
            Some(kbps(bandwidths[&minute.rendition])),
            "{minute:?}"
        );
    }
    assert!(minutes.iter().map(|m| m.media_ms).sum::<u64>() >= view.watch_ms);
    shutdown.cancel();
    let stats = qoe.await.unwrap().unwrap();
    assert_eq!(stats.too_late, 0);
}
