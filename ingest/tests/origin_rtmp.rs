//! RTMP ingest with a real ffmpeg publisher (`-f flv rtmp://...`, as OBS
//! pushes) and a real tansu broker: remuxed into HLS, played back like an
//! HTTP-published stream.

#[allow(dead_code)] // each test binary uses a different part of it
mod common;

use std::time::Duration;

use common::broker;
use common::origin::{
    ADMIN, Health, KEY, Running, STREAM, check_health, config, extinf_ms, health_events,
    playback_requests, started_and_ended,
};
use common::rtmp::{finished, probe, spawn_ffmpeg_rtmp};
use livepulse_ingest::origin::{FINAL_CACHE, OriginConfig};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const MASTER: &str = "/hls/speedrun/master.m3u8";
const MEDIA: &str = "/hls/speedrun/src/index.m3u8";

/// The URIs of a playlist (lines that are not tags or blank).
fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The `#EXTINF` durations of a media playlist, s.
fn durations(playlist: &str) -> Vec<f64> {
    playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:")?.split(',').next()?.parse().ok())
        .collect()
}

fn ended(playlist: &str) -> bool {
    playlist.trim_end().ends_with("#EXT-X-ENDLIST")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_rtmp_is_remuxed_into_playable_hls() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start_with_rtmp(config(), &kafka).await;
    let (ok, stderr) = finished(spawn_ffmpeg_rtmp(&origin.publish_url(KEY), 6)).await;
    assert!(ok, "ffmpeg failed: {stderr}");

    let playlist = origin.wait_for(MEDIA, ended).await;
    let (content_type, master) = origin.get_ok(MASTER).await;
    assert_eq!(content_type, "application/vnd.apple.mpegurl");
    let master = String::from_utf8(master).unwrap();
    assert_eq!(uris(&master), ["src/index.m3u8"], "{master}");
    assert!(
        master.contains("CODECS=\"avc1.") && master.contains(",mp4a.40.2\""),
        "{master}"
    );
    assert!(master.contains("RESOLUTION=320x180"), "{master}");
    let media = origin.get(MEDIA).await;
    assert_eq!(media.headers()["cache-control"], FINAL_CACHE);

    // Every segment is close to the one-second GOP, and together they
    // cover what ffmpeg sent.
    let lengths = durations(&playlist);
    let (last, whole) = lengths.split_last().unwrap();
    assert!(
        whole.iter().all(|d| (0.9..=1.1).contains(d)) && *last > 0.0,
        "{playlist}"
    );
    let total: f64 = lengths.iter().sum();
    assert!((total - 6.0).abs() <= 1.5, "{total} s: {playlist}");

    let segments = uris(&playlist);
    assert_eq!(segments.len(), lengths.len());
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for segment in &segments {
        let (content_type, body) = origin.get_ok(&format!("/hls/{STREAM}/src/{segment}")).await;
        assert_eq!(content_type, "video/mp2t");
        assert!(!body.is_empty() && body.len() % 188 == 0, "{segment}");
        assert!(body.chunks(188).all(|p| p[0] == 0x47), "{segment}");
        let (codecs, duration) = {
            let path = dir.path().join(segment);
            std::fs::write(&path, &body).unwrap();
            probe(&path).await
        };
        assert_eq!(codecs, ["aac", "h264"], "{segment}");
        assert!(duration > 0.0 && duration < 1.5, "{segment}: {duration} s");
        all.extend_from_slice(&body);
    }
    let joined = dir.path().join("all.ts");
    std::fs::write(&joined, &all).unwrap();
    let (codecs, duration) = probe(&joined).await;
    assert_eq!(codecs, ["aac", "h264"]);
    assert!((duration - 6.0).abs() <= 1.5, "{duration} s");

    started_and_ended(&kafka).await;
    // Ingest health from the segmenter's counts, one event per segment of
    // the one rendition.
    let health = health_events(&kafka, |h| h.len() >= extinf_ms(&playlist).1).await;
    let events: Vec<&Health> = health.iter().collect();
    assert!(events.iter().all(|h| h.rendition.as_deref() == Some("src")));
    check_health(&events, &playlist, 150..=1200);
    // Viewers' requests are logged as for any stream.
    let (requests, _) = playback_requests(&kafka, |r| {
        r.iter().any(|r| r.object == "master.m3u8") && r.iter().any(|r| r.object.ends_with(".ts"))
    })
    .await;
    assert!(requests.iter().all(|r| r.stream_id == STREAM));
    let segment_request = requests.iter().find(|r| r.object.ends_with(".ts")).unwrap();
    assert_eq!(segment_request.rendition.as_deref(), Some("src"));
    assert_eq!(segment_request.status, 200);
    assert!(origin.metric("livepulse_origin_rtmp_segments_total").await >= 6.0);
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_and_nothing_is_stored() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start_with_rtmp(config(), &kafka).await;
    let wrong = "sk_wrong0123456789abcdef";
    let (ok, _) = finished(spawn_ffmpeg_rtmp(&origin.publish_url(wrong), 2)).await;
    assert!(!ok, "ffmpeg's publish should fail");
    assert_eq!(origin.get(MASTER).await.status().as_u16(), 404);
    assert_eq!(origin.get(MEDIA).await.status().as_u16(), 404);
    let refused = r#"livepulse_origin_rtmp_refused_total{reason="key"}"#;
    assert_eq!(origin.metric(refused).await, 1.0);
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_publisher_of_a_live_key_is_refused() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start_with_rtmp(config(), &kafka).await;
    let first = spawn_ffmpeg_rtmp(&origin.publish_url(KEY), 5);
    origin.wait_for(MASTER, |_| true).await;

    let (ok, _) = finished(spawn_ffmpeg_rtmp(&origin.publish_url(KEY), 2)).await;
    assert!(!ok, "the second publish should fail");
    let busy = r#"livepulse_origin_rtmp_refused_total{reason="busy"}"#;
    assert_eq!(origin.metric(busy).await, 1.0);

    let (ok, stderr) = finished(first).await;
    assert!(ok, "the first publisher was disturbed: {stderr}");
    let playlist = origin.wait_for(MEDIA, ended).await;
    let total: f64 = durations(&playlist).iter().sum();
    assert!((total - 5.0).abs() <= 1.5, "{total} s: {playlist}");
    started_and_ended(&kafka).await;
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_key_closes_the_rtmp_connection() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start_with_rtmp(config(), &kafka).await;
    let publisher = spawn_ffmpeg_rtmp(&origin.publish_url(KEY), 20);
    origin.wait_for(MASTER, |_| true).await;
    let revoked = origin
        .http
        .delete(format!("{}/admin/streams/{STREAM}", origin.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 204);

    let started = tokio::time::Instant::now();
    let (ok, _) = finished(publisher).await;
    assert!(!ok, "ffmpeg should see its connection closed");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(origin.get(MASTER).await.status().as_u16(), 404);
    let closed = r#"livepulse_origin_rtmp_disconnects_total{reason="revoked"}"#;
    assert_eq!(origin.metric(closed).await, 1.0);
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_origin_ends_a_live_rtmp_stream() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start_with_rtmp(config(), &kafka).await;
    let publisher = spawn_ffmpeg_rtmp(&origin.publish_url(KEY), 20);
    origin.wait_for(MASTER, |_| true).await;
    let started = tokio::time::Instant::now();
    origin.stop().await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let (ok, _) = finished(publisher).await;
    assert!(!ok, "ffmpeg should see its connection closed");
    started_and_ended(&kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_surplus_connections_are_closed() {
    let (_dir, _broker, kafka) = broker().await;
    let cfg = OriginConfig {
        rtmp_max_connections: 1,
        rtmp_idle_timeout_ms: 1000,
        ..config()
    };
    let origin = Running::start_with_rtmp(cfg, &kafka).await;
    let mut silent = TcpStream::connect(origin.rtmp.unwrap()).await.unwrap();
    // Let the origin take the first connection before the second arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut surplus = TcpStream::connect(origin.rtmp.unwrap()).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(1), surplus.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    let started = tokio::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(started.elapsed() >= Duration::from_millis(500));
    let refused = r#"livepulse_origin_rtmp_refused_total{reason="connections"}"#;
    assert_eq!(origin.metric(refused).await, 1.0);
    let idle = r#"livepulse_origin_rtmp_disconnects_total{reason="idle"}"#;
    assert_eq!(origin.metric(idle).await, 1.0);
    origin.stop().await;
}
