//! The HLS origin with real ffmpeg publishers and a real tansu broker.

#[allow(dead_code)] // each test binary uses a different part of it
mod common;

use std::time::Duration;

use common::broker;
use common::origin::{
    ADMIN, CREATOR, Health, KEY, Running, STREAM, check_health, chunked, config, error_text,
    ffmpeg_fmp4, ffmpeg_ts, health_events, lifecycle, playback_requests, read_response, refused,
    send_raw, started_and_ended, stream_events,
};
use livepulse_connectors::kafka::KafkaConfig;
use livepulse_contract::playback::{Cmcd, ObjectKind};
use livepulse_ingest::origin::{
    CreatedStream, FINAL_CACHE, LIVE_PLAYLIST_CACHE, Origin, OriginConfig, StreamInfo,
};
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const LIVE: &str = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.000000,\nseg00000.m4s\n";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The URIs of a playlist (lines that are not tags or blank).
fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_fmp4_renditions_and_master_are_served_without_the_key() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start(config(), &kafka).await;
    ffmpeg_fmp4(&origin.base, KEY, 6).await;

    let (content_type, master) = origin.get_ok(&format!("/hls/{STREAM}/master.m3u8")).await;
    assert_eq!(content_type, "application/vnd.apple.mpegurl");
    let master = String::from_utf8(master).unwrap();
    assert_eq!(uris(&master), ["180p/index.m3u8", "90p/index.m3u8"]);
    let mut fetched = 0;
    let mut finals = Vec::new();
    for (n, rendition) in ["180p", "90p"].iter().enumerate() {
        let path = format!("/hls/{STREAM}/{rendition}/index.m3u8");
        let response = origin.get(&path).await;
        assert_eq!(response.headers()["cache-control"], FINAL_CACHE);
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        let playlist = response.text().await.unwrap();
        finals.push((*rendition, playlist.clone()));
        assert!(
            playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
            "{playlist}"
        );
        assert!(
            playlist.contains(&format!("#EXT-X-MAP:URI=\"init_{n}.mp4\"")),
            "{playlist}"
        );
        let segments = uris(&playlist);
        assert_eq!(segments.len(), 4, "{playlist}");
        let (init_type, init) = origin
            .get_ok(&format!("/hls/{STREAM}/{rendition}/init_{n}.mp4"))
            .await;
        assert_eq!(init_type, "video/mp4");
        assert!(!contains(&init, KEY));
        for segment in segments {
            let (segment_type, body) = origin
                .get_ok(&format!("/hls/{STREAM}/{rendition}/{segment}"))
                .await;
            assert_eq!(segment_type, "video/iso.segment");
            assert!(body.len() > 1000 && !contains(&body, KEY), "{segment}");
            fetched += 1;
        }
        assert!(!playlist.contains(KEY));
    }
    assert_eq!(fetched, 8);
    assert!(!master.contains(KEY));
    // The first segments fell off the window and ffmpeg deleted them.
    let deleted = origin
        .get(&format!("/hls/{STREAM}/180p/seg00000.m4s"))
        .await;
    assert_eq!(deleted.status().as_u16(), 404);

    started_and_ended(&kafka).await;
    // Ingest health per segment and rendition, parsed from the fMP4
    // fragments (180p: 300k video, 90p: 100k, both with 64k audio).
    let segments: usize = finals
        .iter()
        .map(|(_, p)| common::origin::extinf_ms(p).1)
        .sum();
    let health = health_events(&kafka, |h| h.len() >= segments).await;
    for ((rendition, playlist), kbps) in finals.iter().zip([150..=1200, 60..=600]) {
        let events: Vec<&Health> = health
            .iter()
            .filter(|h| h.rendition.as_deref() == Some(rendition))
            .collect();
        check_health(&events, playlist, kbps);
    }
    assert_eq!(
        origin
            .metric(r#"livepulse_origin_health_unparsed_total{format="fmp4"}"#)
            .await,
        0.0
    );
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_ts_with_absolute_publish_urls_is_served_relative() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start(config(), &kafka).await;
    ffmpeg_ts(&origin.base, KEY, 5).await;

    let response = origin.get(&format!("/hls/{STREAM}/index.m3u8")).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.apple.mpegurl"
    );
    let playlist = response.text().await.unwrap();
    assert!(
        playlist.trim_end().ends_with("#EXT-X-ENDLIST"),
        "{playlist}"
    );
    // ffmpeg wrote `http://.../live/KEY/indexN.ts`; viewers get `indexN.ts`.
    let segments = uris(&playlist);
    assert_eq!(segments.len(), 2, "{playlist}");
    assert!(
        !playlist.contains(KEY) && !playlist.contains("http"),
        "{playlist}"
    );
    for segment in &segments {
        assert!(segment.starts_with("index") && segment.ends_with(".ts"));
        let (content_type, body) = origin.get_ok(&format!("/hls/{STREAM}/{segment}")).await;
        assert_eq!(content_type, "video/mp2t");
        assert_eq!(body[0], 0x47, "MPEG-TS sync byte");
        assert!(!contains(&body, KEY));
    }
    let first = origin.get(&format!("/hls/{STREAM}/index0.ts")).await;
    assert_eq!(first.status().as_u16(), 404, "deleted by ffmpeg");

    started_and_ended(&kafka).await;
    // Ingest health parsed from the transport stream, at the root.
    let segments = common::origin::extinf_ms(&playlist).1;
    let health = health_events(&kafka, |h| h.len() >= segments).await;
    assert!(health.iter().all(|h| h.rendition.is_none()), "{health:?}");
    check_health(&health.iter().collect::<Vec<_>>(), &playlist, 150..=1200);
    assert_eq!(
        origin
            .metric(r#"livepulse_origin_health_unparsed_total{format="ts"}"#)
            .await,
        0.0
    );
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playlist_lists_a_segment_only_once_it_is_stored() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start(config(), &kafka).await;
    let addr = origin.addr;
    let put = |name: &str, body: Vec<u8>| {
        let request = chunked("PUT", &format!("/live/{KEY}/720p/{name}"), &[&body]);
        async move { send_raw(addr, &request).await.0 }
    };
    let served = || async {
        let response = origin.get(&format!("/hls/{STREAM}/720p/index.m3u8")).await;
        let cache = response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = response.text().await.unwrap();
        // Whatever a player is told, it can fetch.
        for uri in uris(&text) {
            let segment = origin.get(&format!("/hls/{STREAM}/720p/{uri}")).await;
            assert_eq!(segment.status().as_u16(), 200, "{uri} listed in {text}");
        }
        (text, cache)
    };
    let head = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n";
    let one = format!("{head}#EXTINF:1.000,\nseg0.ts\n");
    let two = format!("{one}#EXTINF:1.000,\nseg1.ts\n");
    assert_eq!(put("seg0.ts", vec![1; 2000]).await, 201);
    // The playlist overtook seg1: served without it.
    assert_eq!(put("index.m3u8", two.clone().into_bytes()).await, 201);
    assert_eq!(
        served().await,
        (one.clone(), LIVE_PLAYLIST_CACHE.to_owned())
    );
    // Whole the moment seg1's PUT is answered.
    assert_eq!(put("seg1.ts", vec![2; 3000]).await, 201);
    assert_eq!(
        served().await,
        (two.clone(), LIVE_PLAYLIST_CACHE.to_owned())
    );
    // The final playlist overtook the last segment: still live until it lands.
    let ended = format!("{two}#EXTINF:0.500,\nseg2.ts\n#EXT-X-ENDLIST\n");
    assert_eq!(put("index.m3u8", ended.clone().into_bytes()).await, 204);
    assert_eq!(served().await, (two, LIVE_PLAYLIST_CACHE.to_owned()));
    assert_eq!(put("seg2.ts", vec![3; 1000]).await, 201);
    assert_eq!(served().await, (ended, FINAL_CACHE.to_owned()));

    // Not MPEG-TS: health without frame rate or keyframes, and counted.
    let health = health_events(&kafka, |h| h.len() >= 3).await;
    let shape: Vec<_> = health
        .iter()
        .map(|h| {
            (
                h.rendition.as_deref(),
                h.segment_ms,
                h.bitrate_kbps,
                h.frame_rate,
            )
        })
        .collect();
    assert_eq!(
        shape,
        [
            (Some("720p"), 1000, 16, None),
            (Some("720p"), 1000, 24, None),
            (Some("720p"), 500, 16, None)
        ]
    );
    assert!(health.iter().all(|h| h.keyframe_interval_ms.is_none()));
    assert_eq!(
        origin
            .metric(r#"livepulse_origin_health_unparsed_total{format="ts"}"#)
            .await,
        3.0
    );
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_playable_as_soon_as_its_put_returns() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start(config(), &kafka).await;
    let segment: Vec<u8> = (0..200_000u32).map(|n| (n % 251) as u8).collect();
    let (status, _) = send_raw(
        origin.addr,
        &chunked(
            "PUT",
            &format!("/live/{KEY}/720p/seg00000.m4s"),
            &[&segment[..70_000], &segment[70_000..]],
        ),
    )
    .await;
    assert_eq!(status, 201);
    let response = origin
        .get(&format!("/hls/{STREAM}/720p/seg00000.m4s"))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "video/iso.segment");
    assert_eq!(headers["content-length"], "200000");
    assert_eq!(headers["cache-control"], FINAL_CACHE);
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(
        headers["access-control-expose-headers"],
        "CMSD-Static, CMSD-Dynamic"
    );
    assert_eq!(response.bytes().await.unwrap(), segment);

    let (status, _) = send_raw(
        origin.addr,
        &chunked(
            "PUT",
            &format!("/live/{KEY}/720p/index.m3u8"),
            &[LIVE.as_bytes()],
        ),
    )
    .await;
    assert_eq!(status, 201);
    let response = origin.get(&format!("/hls/{STREAM}/720p/index.m3u8")).await;
    assert_eq!(response.headers()["cache-control"], LIVE_PLAYLIST_CACHE);
    assert_eq!(response.text().await.unwrap(), LIVE);
    // A new version replaces it (204) and is served at once.
    let listed = origin
        .put(&format!("/live/{KEY}/720p/seg00001.m4s"), vec![9u8; 1000])
        .await;
    assert_eq!(listed.status().as_u16(), 201);
    let next = format!("{LIVE}#EXTINF:1.000000,\nseg00001.m4s\n");
    assert_eq!(
        origin
            .put(&format!("/live/{KEY}/720p/index.m3u8"), next.clone())
            .await
            .status()
            .as_u16(),
        204
    );
    let (_, served) = origin
        .get_ok(&format!("/hls/{STREAM}/720p/index.m3u8"))
        .await;
    assert_eq!(served, next.as_bytes());

    // HEAD, the CORS preflight of a player sending CMCD headers, 404s.
    let head = origin
        .http
        .head(origin.url(&format!("/hls/{STREAM}/720p/seg00000.m4s")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.headers()["content-length"], "200000");
    let preflight = origin
        .http
        .request(
            reqwest::Method::OPTIONS,
            origin.url(&format!("/hls/{STREAM}/720p/seg00000.m4s")),
        )
        .header("origin", "https://player.example")
        .header(
            "access-control-request-headers",
            "cmcd-request,cmcd-session",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status().as_u16(), 204);
    assert_eq!(
        preflight.headers()["access-control-allow-headers"],
        "CMCD-Object, CMCD-Request, CMCD-Session, CMCD-Status"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-methods"],
        "GET, HEAD, OPTIONS"
    );
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let missing = origin
        .get(&format!("/hls/{STREAM}/720p/seg00099.m4s"))
        .await;
    assert_eq!(missing.headers()["cache-control"], "no-store");
    assert_eq!(missing.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        refused(missing).await,
        (
            404,
            format!("no object `720p/seg00099.m4s` in stream `{STREAM}`")
        )
    );
    assert_eq!(
        origin
            .get("/hls/nobody/master.m3u8")
            .await
            .status()
            .as_u16(),
        404
    );

    // ffmpeg's DELETE of a segment that fell off its list.
    let (status, _) = send_raw(
        origin.addr,
        format!(
            "DELETE /live/{KEY}/720p/seg00000.m4s HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(status, 204);
    let gone = origin
        .get(&format!("/hls/{STREAM}/720p/seg00000.m4s"))
        .await;
    assert_eq!(gone.status().as_u16(), 404);
    let again = origin
        .http
        .delete(origin.url(&format!("/live/{KEY}/720p/seg00000.m4s")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(again).await,
        (404, "no object `720p/seg00000.m4s`".to_owned())
    );

    // Stopping the origin ends the live stream.
    origin.stop().await;
    started_and_ended(&kafka).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_survive_the_client_closing_its_side_first() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start(config(), &kafka).await;
    // ffmpeg shuts down its sending side after the last chunk, then reads
    // the answer (or exits without reading it).
    let mut half_closed = TcpStream::connect(origin.addr).await.unwrap();
    let body = vec![3u8; 50_000];
    let request = chunked("PUT", &format!("/live/{KEY}/a.ts"), &[&body]);
    half_closed.write_all(&request).await.unwrap();
    half_closed.shutdown().await.unwrap();
    assert_eq!(read_response(&mut half_closed).await.0, 201);
    for n in 0..10 {
        let mut gone = TcpStream::connect(origin.addr).await.unwrap();
        let request = chunked("PUT", &format!("/live/{KEY}/b{n}.ts"), &[&body]);
        gone.write_all(&request).await.unwrap();
        drop(gone);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in ["a.ts", "b0.ts", "b9.ts"] {
        let (_, served) = origin.get_ok(&format!("/hls/{STREAM}/{name}")).await;
        assert_eq!(served, body, "{name}");
    }
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_stores_and_serves_nothing() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start(config(), &kafka).await;
    let wrong = "sk_wrong0123456789abcdef";
    // A real publisher with the wrong key: ffmpeg ignores the 403s.
    ffmpeg_ts(&origin.base, wrong, 2).await;
    let rejected = origin.metric("livepulse_origin_rejected_keys_total").await;
    assert!(rejected >= 3.0, "{rejected}");
    let put = origin.put(&format!("/live/{wrong}/index.m3u8"), LIVE).await;
    assert_eq!(
        refused(put).await,
        (
            403,
            "unknown or revoked stream key: nothing stored".to_owned()
        )
    );
    for path in ["index.m3u8", "index0.ts", "index1.ts"] {
        let response = origin.get(&format!("/hls/{STREAM}/{path}")).await;
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
    assert_eq!(
        origin.metric("livepulse_origin_rejected_keys_total").await,
        rejected + 1.0
    );
    assert_eq!(
        origin
            .metric(r#"livepulse_origin_uploads_total{method="PUT",status="201"}"#)
            .await,
        0.0
    );
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_are_refused_with_the_reason() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start(config(), &kafka).await;
    let cases = [
        ("../x.ts", "path traversal is not allowed: `..`"),
        ("720p/../../x.ts", "path traversal is not allowed: `..`"),
        (
            "%2e%2e/x.ts",
            "percent-encoded path segment `%2e%2e` is not allowed",
        ),
        (
            "720p/%2E%2E%2Fx.ts",
            "percent-encoded path segment `%2E%2E%2Fx.ts` is not allowed",
        ),
        (
            "a/b/x.ts",
            "at most one folder level is allowed: `rendition/name`",
        ),
        ("a//x.ts", "empty path segment in `a//x.ts`"),
        (
            "x.exe",
            "object name `x.exe` must be <name>.<m3u8|ts|m4s|mp4|aac|vtt>",
        ),
        (
            "a$b/x.ts",
            "path segment `a$b` has characters outside [A-Za-z0-9_.-]",
        ),
    ];
    for (path, reason) in cases {
        let request = chunked("PUT", &format!("/live/{KEY}/{path}"), &[b"data"]);
        let (status, body) = send_raw(origin.addr, &request).await;
        assert_eq!(
            (status, error_text(&body)),
            (400, reason.to_owned()),
            "{path}"
        );
    }
    // Viewers get the same checks.
    let (status, body) = send_raw(
        origin.addr,
        format!("GET /hls/{STREAM}/../x.ts HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(
        (status, error_text(&body)),
        (400, "path traversal is not allowed: `..`".to_owned())
    );
    assert_eq!(
        origin
            .metric(r#"livepulse_origin_uploads_total{method="PUT",status="400"}"#)
            .await,
        cases.len() as f64
    );
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_uploads_are_refused_and_not_stored() {
    let (_dir, _broker, kafka) = broker().await;
    let cfg = OriginConfig {
        max_segment_bytes: 64 * 1024,
        max_playlist_bytes: 4 * 1024,
        ..config()
    };
    let origin = Running::start(cfg, &kafka).await;
    let big = vec![1u8; 64 * 1024 + 1];
    // Chunked, as ffmpeg sends: refused once the limit is crossed.
    let (status, body) = send_raw(
        origin.addr,
        &chunked(
            "PUT",
            &format!("/live/{KEY}/big.ts"),
            &[&big[..40_000], &big[40_000..]],
        ),
    )
    .await;
    assert_eq!(
        (status, error_text(&body)),
        (413, "segment exceeds the limit of 65536 bytes".to_owned())
    );
    // Declared too large: refused before reading, so the connection closes.
    let response = origin.put(&format!("/live/{KEY}/big2.ts"), big).await;
    assert_eq!(
        response.headers().get("connection").map(|v| v.as_bytes()),
        Some(&b"close"[..])
    );
    assert_eq!(
        refused(response).await,
        (413, "segment exceeds the limit of 65536 bytes".to_owned())
    );
    let playlist = format!("{LIVE}{}", "#EXT-X-PROGRAM-DATE-TIME:x\n".repeat(200));
    let response = origin
        .put(&format!("/live/{KEY}/index.m3u8"), playlist)
        .await;
    assert_eq!(
        refused(response).await,
        (413, "playlist exceeds the limit of 4096 bytes".to_owned())
    );
    for path in ["big.ts", "big2.ts", "index.m3u8"] {
        let response = origin.get(&format!("/hls/{STREAM}/{path}")).await;
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
    let exact = vec![2u8; 64 * 1024];
    let response = origin.put(&format!("/live/{KEY}/exact.ts"), exact).await;
    assert_eq!(response.status().as_u16(), 201);
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_playlist_keeps_the_previous_one_served() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start(config(), &kafka).await;
    let path = format!("/live/{KEY}/720p/index.m3u8");
    segment(&origin, "seg00000.m4s").await;
    assert_eq!(origin.put(&path, LIVE).await.status().as_u16(), 201);
    let cases = [
        ("<html>oops</html>", "playlist does not start with #EXTM3U"),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:one,\nseg1.m4s\n",
            "playlist line 3: #EXTINF duration `one` is not a number",
        ),
        (
            "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n",
            "playlist line 4: playlist ends before the URI its last tag announces",
        ),
    ];
    for (body, reason) in cases {
        let response = origin.put(&path, body).await;
        assert_eq!(refused(response).await, (422, reason.to_owned()));
    }
    let leaking = format!("{LIVE}#EXTINF:1,\nseg1.m4s?key={KEY}\n");
    let response = origin.put(&path, leaking).await;
    assert_eq!(
        refused(response).await,
        (
            422,
            "playlist contains the stream key outside a /live/ URL".to_owned()
        )
    );
    let (_, served) = origin
        .get_ok(&format!("/hls/{STREAM}/720p/index.m3u8"))
        .await;
    assert_eq!(served, LIVE.as_bytes());
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_times_out_alone() {
    let (_dir, _broker, kafka) = broker().await;
    let cfg = OriginConfig {
        upload_timeout_ms: 1500,
        upload_idle_timeout_ms: 300,
        ..config()
    };
    let origin = Running::start(cfg, &kafka).await;

    // Slow-loris: headers and one chunk, then nothing.
    let mut stalled = TcpStream::connect(origin.addr).await.unwrap();
    let head = chunked("PUT", &format!("/live/{KEY}/stalled.ts"), &[]);
    let head = &head[..head.len() - 5]; // without the final `0\r\n\r\n`
    stalled.write_all(head).await.unwrap();
    stalled.write_all(b"5\r\nhello\r\n").await.unwrap();
    let started = std::time::Instant::now();

    // A trickle: progress every 100 ms, but never done.
    let mut trickle = TcpStream::connect(origin.addr).await.unwrap();
    let head = chunked("PUT", &format!("/live/{KEY}/trickle.ts"), &[]);
    trickle.write_all(&head[..head.len() - 5]).await.unwrap();
    let trickling = tokio::spawn(async move {
        for _ in 0..40 {
            if trickle.write_all(b"1\r\nx\r\n").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        read_response(&mut trickle).await
    });

    // Meanwhile an honest upload goes through.
    let ok = origin
        .put(&format!("/live/{KEY}/fine.ts"), vec![7u8; 1000])
        .await;
    assert_eq!(ok.status().as_u16(), 201);

    let (status, body) = read_response(&mut stalled).await;
    assert_eq!(
        (status, error_text(&body)),
        (408, "upload stalled: no data for 300 ms".to_owned())
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let (status, body) = trickling.await.unwrap();
    assert_eq!(
        (status, error_text(&body)),
        (408, "upload did not complete within 1500 ms".to_owned())
    );
    for (path, expected) in [("stalled.ts", 404), ("trickle.ts", 404), ("fine.ts", 200)] {
        let response = origin.get(&format!("/hls/{STREAM}/{path}")).await;
        assert_eq!(response.status().as_u16(), expected, "{path}");
    }
    origin.stop().await;
}

/// `CMCD=<text>` URL-encoded, as players append it.
fn cmcd_query(text: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("CMCD", text)
        .finish()
}

/// Uploads a 1000-byte segment `720p/{name}`.
async fn segment(origin: &Running, name: &str) {
    let response = origin
        .put(&format!("/live/{KEY}/720p/{name}"), vec![9u8; 1000])
        .await;
    assert_eq!(response.status().as_u16(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cmcd_from_the_query_and_the_headers_lands_in_kafka() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start(config(), &kafka).await;
    segment(&origin, "q.m4s").await;
    segment(&origin, "h.m4s").await;

    // As hls.js sends it by default: one URL-encoded query argument.
    let query = "bl=1000,br=986,cid=\"live-1\",d=1000,dl=1000,mtp=5700,nor=\"seg00004.m4s\",ot=av,rtp=4900,sf=h,sid=\"sess-123\",st=l,su,tb=986";
    let response = origin
        .get(&format!("/hls/{STREAM}/720p/q.m4s?{}", cmcd_query(query)))
        .await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 1000);
    // With `useHeaders: true`: the four headers.
    let response = origin
        .http
        .get(origin.url(&format!("/hls/{STREAM}/720p/h.m4s")))
        .header("CMCD-Object", "br=3200,d=2000,ot=v,tb=6000")
        .header("CMCD-Request", "bl=21300,dl=18500,mtp=25400,nor=\"h2.m4s\"")
        .header(
            "CMCD-Session",
            "cid=\"live-1\",pr=1.25,sf=h,sid=\"sess-456\",st=l,v=2",
        )
        .header("CMCD-Status", "bs,rtp=15000")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.bytes().await.unwrap();

    let (requests, raw) = playback_requests(&kafka, |r| {
        r.iter().filter(|r| r.cmcd.is_some()).count() >= 2
    })
    .await;
    let by_object = |object: &str| {
        requests
            .iter()
            .find(|r| r.object == object)
            .unwrap_or_else(|| panic!("no record of {object}: {requests:?}"))
            .clone()
    };
    let q = by_object("q.m4s");
    assert_eq!(
        q.cmcd,
        Some(Cmcd {
            buffer_length_ms: Some(1000),
            encoded_bitrate_kbps: Some(986),
            content_id: Some("live-1".into()),
            object_duration_ms: Some(1000),
            deadline_ms: Some(1000),
            measured_throughput_kbps: Some(5700),
            next_object_request: Some("seg00004.m4s".into()),
            object_type: Some("av".into()),
            requested_max_throughput_kbps: Some(4900),
            streaming_format: Some("h".into()),
            session_id: Some("sess-123".into()),
            stream_type: Some("l".into()),
            startup: Some(true),
            top_bitrate_kbps: Some(986),
            ..Cmcd::default()
        })
    );
    let h = by_object("h.m4s");
    assert_eq!(
        h.cmcd,
        Some(Cmcd {
            encoded_bitrate_kbps: Some(3200),
            object_duration_ms: Some(2000),
            object_type: Some("v".into()),
            top_bitrate_kbps: Some(6000),
            buffer_length_ms: Some(21300),
            deadline_ms: Some(18500),
            measured_throughput_kbps: Some(25400),
            next_object_request: Some("h2.m4s".into()),
            content_id: Some("live-1".into()),
            playback_rate: Some(1.25),
            streaming_format: Some("h".into()),
            session_id: Some("sess-456".into()),
            stream_type: Some("l".into()),
            version: Some(2),
            buffer_starvation: Some(true),
            requested_max_throughput_kbps: Some(15000),
            ..Cmcd::default()
        })
    );
    for record in [&q, &h] {
        assert_eq!(record.stream_id, STREAM);
        assert_eq!(record.rendition.as_deref(), Some("720p"));
        assert_eq!(record.object_kind, ObjectKind::Segment);
        assert_eq!((record.status, record.bytes_sent), (200, 1000));
        assert!(record.complete);
        let (ttfb, ttlb) = (record.ttfb_us.unwrap(), record.ttlb_us.unwrap());
        assert!(ttfb <= ttlb && ttlb < 5_000_000, "{ttfb} {ttlb}");
        assert!(record.received_ms > 1_700_000_000_000);
        assert_eq!(record.client_cohort, "127.0.0.0/24");
    }
    // The raw records never carry the client's address.
    for value in &raw {
        assert!(!contains(value, "127.0.0.1"));
    }
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cmcd_is_counted_and_the_request_still_served_and_logged() {
    let (_dir, _broker, kafka) = broker().await;
    let origin = Running::start(config(), &kafka).await;
    segment(&origin, "bad.m4s").await;
    let before = origin.metric("livepulse_origin_cmcd_malformed_total").await;
    for (query, header) in [
        (Some("bl=abc"), None),
        (Some("sid=\"unterminated"), None),
        (None, Some("su=1")),
    ] {
        let path = match query {
            Some(query) => format!("/hls/{STREAM}/720p/bad.m4s?{}", cmcd_query(query)),
            None => format!("/hls/{STREAM}/720p/bad.m4s"),
        };
        let mut request = origin.http.get(origin.url(&path));
        if let Some(header) = header {
            request = request.header("CMCD-Request", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.bytes().await.unwrap().len(), 1000);
    }
    assert_eq!(
        origin.metric("livepulse_origin_cmcd_malformed_total").await,
        before + 3.0
    );
    let (requests, _) = playback_requests(&kafka, |r| r.len() >= 3).await;
    assert_eq!(requests.len(), 3);
    for record in requests {
        assert_eq!((record.object.as_str(), record.status), ("bad.m4s", 200));
        assert_eq!(record.cmcd, None);
    }
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_creates_lists_and_revokes_keys() {
    let (_dir, _broker, kafka) = broker().await;
    let off = Running::start(
        OriginConfig {
            admin_token: None,
            ..config()
        },
        &kafka,
    )
    .await;
    let response = off
        .http
        .get(off.url("/admin/streams"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    off.stop().await;

    let origin = Running::start(config(), &kafka).await;
    let admin = |method: reqwest::Method, path: &str| {
        origin
            .http
            .request(method, origin.url(path))
            .bearer_auth(ADMIN)
    };
    let anonymous = origin.get("/admin/streams").await;
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        refused(anonymous).await,
        (
            401,
            "missing admin token: send `Authorization: Bearer <admin token>`".to_owned()
        )
    );
    let wrong = origin
        .http
        .get(origin.url("/admin/streams"))
        .bearer_auth("adm_wrong0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(wrong).await,
        (403, "invalid admin token".to_owned())
    );

    let new = json!({"stream_id": "late-show", "creator_id": "creator-9"});
    let response = admin(reqwest::Method::POST, "/admin/streams")
        .json(&new)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let created: CreatedStream = response.json().await.unwrap();
    assert_eq!(
        (created.stream_id.as_str(), created.creator_id.as_str()),
        ("late-show", "creator-9")
    );
    let again = admin(reqwest::Method::POST, "/admin/streams")
        .json(&new)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(again).await,
        (
            409,
            "stream `late-show` already has a key; revoke it first".to_owned()
        )
    );
    let bad = admin(reqwest::Method::POST, "/admin/streams")
        .json(&json!({"stream_id": "../x", "creator_id": "c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(bad).await,
        (
            400,
            "stream_id must be made of [A-Za-z0-9_.-] and not only dots".to_owned()
        )
    );

    let response = admin(reqwest::Method::GET, "/admin/streams")
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(
        !text.contains(KEY) && !text.contains(&created.key),
        "{text}"
    );
    let listed: Vec<StreamInfo> = serde_json::from_str(&text).unwrap();
    let listed: Vec<_> = listed
        .iter()
        .map(|s| (s.stream_id.as_str(), s.creator_id.as_str()))
        .collect();
    assert_eq!(listed, [("late-show", "creator-9"), (STREAM, CREATOR)]);

    // The new key publishes; revoking it ends the stream and stops serving.
    let put = origin
        .put(&format!("/live/{}/s1.ts", created.key), vec![0x47u8; 188])
        .await;
    assert_eq!(put.status().as_u16(), 201);
    assert_eq!(
        origin.get("/hls/late-show/s1.ts").await.status().as_u16(),
        200
    );
    let revoked = admin(reqwest::Method::DELETE, "/admin/streams/late-show")
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 204);
    assert_eq!(
        origin.get("/hls/late-show/s1.ts").await.status().as_u16(),
        404
    );
    let put = origin
        .put(&format!("/live/{}/s2.ts", created.key), vec![0x47u8; 188])
        .await;
    assert_eq!(put.status().as_u16(), 403);
    assert_eq!(
        origin.get("/hls/late-show/s2.ts").await.status().as_u16(),
        404
    );
    let twice = admin(reqwest::Method::DELETE, "/admin/streams/late-show")
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(twice).await,
        (404, "stream `late-show` has no key".to_owned())
    );
    let events = stream_events(&kafka, |e| e.len() >= 2).await;
    assert_eq!(
        events,
        [
            lifecycle("late-show", "start", "creator-9"),
            lifecycle("late-show", "end", "creator-9")
        ]
    );
    origin.stop().await;
}

/// The admin API's `POST` and `DELETE` with the admin token.
async fn admin(origin: &Running, method: reqwest::Method, path: &str) -> reqwest::Response {
    let request = origin
        .http
        .request(method.clone(), origin.url(path))
        .bearer_auth(ADMIN);
    let request = match method {
        reqwest::Method::POST => {
            request.json(&json!({"stream_id": "late-show", "creator_id": "creator-9"}))
        }
        _ => request,
    };
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_survive_a_restart_on_the_keys_file() {
    use std::os::unix::fs::PermissionsExt;

    let (_dir, _broker, kafka) = broker().await;
    let keys = tempfile::tempdir().unwrap();
    let file = keys.path().join("stream-keys.json");
    let cfg = OriginConfig {
        keys_file: Some(file.clone()),
        ..config()
    };
    let origin = Running::start(cfg.clone(), &kafka).await;
    let response = admin(&origin, reqwest::Method::POST, "/admin/streams").await;
    assert_eq!(response.status().as_u16(), 201);
    let created: CreatedStream = response.json().await.unwrap();
    let path = format!("/admin/streams/{STREAM}");
    let revoked = admin(&origin, reqwest::Method::DELETE, &path).await;
    assert_eq!(revoked.status().as_u16(), 204);
    origin.stop().await;

    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let names: Vec<_> = std::fs::read_dir(keys.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["stream-keys.json"], "no temporary file left");

    // Restarted on the same file: the created key publishes, the revoked
    // configured one stays revoked.
    let again = Running::start(cfg.clone(), &kafka).await;
    let put = again
        .put(&format!("/live/{}/s1.ts", created.key), vec![0x47u8; 188])
        .await;
    assert_eq!(put.status().as_u16(), 201);
    assert_eq!(
        again.get("/hls/late-show/s1.ts").await.status().as_u16(),
        200
    );
    let put = again
        .put(&format!("/live/{KEY}/s1.ts"), vec![0x47u8; 188])
        .await;
    assert_eq!(
        refused(put).await,
        (
            403,
            "unknown or revoked stream key: nothing stored".to_owned()
        )
    );
    let listed: Vec<StreamInfo> = again
        .http
        .get(again.url("/admin/streams"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = listed.iter().map(|s| s.stream_id.as_str()).collect();
    assert_eq!(listed, ["late-show"]);
    // Revoking the created key is kept too.
    let revoked = admin(&again, reqwest::Method::DELETE, "/admin/streams/late-show").await;
    assert_eq!(revoked.status().as_u16(), 204);
    again.stop().await;
    let third = Running::start(cfg.clone(), &kafka).await;
    let put = third
        .put(&format!("/live/{}/s2.ts", created.key), vec![0x47u8; 188])
        .await;
    assert_eq!(put.status().as_u16(), 403);
    third.stop().await;

    // A keys file others may read, or one that is not a keys file, stops
    // the origin from starting, saying why.
    let start_error = |kafka: &KafkaConfig| match Origin::new(cfg.clone(), kafka) {
        Ok(_) => panic!("the origin started"),
        Err(err) => err.to_string(),
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        start_error(&kafka),
        format!(
            "the keys file {} is readable by others (mode 644): chmod 600 it",
            file.display()
        )
    );
    std::fs::write(&file, "{\"version\":1,\"created\":[]}").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let invalid = start_error(&kafka);
    let reason = invalid
        .strip_prefix(&format!("the keys file {} is invalid: ", file.display()))
        .unwrap_or_else(|| panic!("{invalid}"));
    assert!(reason.starts_with("missing field `revoked`"), "{invalid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_and_silence_bound_what_is_kept() {
    let (_dir, _broker, kafka) = broker().await;
    let cfg = OriginConfig {
        max_segments_per_rendition: 2,
        stream_idle_timeout_ms: 1000,
        ended_retention_ms: 500,
        ..config()
    };
    let origin = Running::start(cfg, &kafka).await;
    for name in ["s1.m4s", "s2.m4s", "s3.m4s", "s4.m4s"] {
        segment(&origin, name).await;
    }
    let status = |name: &'static str| {
        let origin = &origin;
        async move {
            origin
                .get(&format!("/hls/{STREAM}/720p/{name}"))
                .await
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        [
            status("s1.m4s").await,
            status("s2.m4s").await,
            status("s3.m4s").await,
            status("s4.m4s").await
        ],
        [404, 404, 200, 200]
    );
    assert_eq!(
        origin
            .metric(r#"livepulse_origin_evictions_total{reason="window"}"#)
            .await,
        2.0
    );
    // No upload for a second: the stream ends, and half a second later it is gone.
    started_and_ended(&kafka).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(status("s4.m4s").await, 404);
    assert_eq!(
        origin
            .metric(r#"livepulse_origin_streams_ended_total{reason="idle"}"#)
            .await,
        1.0
    );
    origin.stop().await;
}
