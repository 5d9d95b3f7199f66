//! Serving beyond memory (the spill directory) and behind proxies (the
//! network cohort from `X-Forwarded-For`), with a real tansu broker.

#[allow(dead_code)] // each test binary uses a different part of it
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::broker;
use common::origin::{ADMIN, KEY, Running, STREAM, chunked, config, playback_requests, send_raw};
use livepulse_ingest::origin::{FINAL_CACHE, OriginConfig};

/// A segment's bytes: 60 kB of `n + 1`.
fn body(n: u8) -> Vec<u8> {
    vec![n + 1; 60_000]
}

/// A playlist listing `s{first}.ts` to `s{last}.ts`.
fn listing(first: u8, last: u8) -> String {
    let mut text = format!("#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:{first}\n");
    for n in first..=last {
        text.push_str(&format!("#EXTINF:1.000,\ns{n}.ts\n"));
    }
    text
}

/// The spilled segments in `dir`, after checking only the origin's user
/// may read them.
fn spilled(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|entry| {
            let mode = entry.unwrap().metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        })
        .count()
}

async fn put(origin: &Running, name: &str, body: &[u8]) -> u16 {
    let request = chunked("PUT", &format!("/live/{KEY}/{name}"), &[body]);
    send_raw(origin.addr, &request).await.0
}

/// Six listed 60 kB segments into 256 KiB of memory.
async fn publish_six(origin: &Running) {
    assert_eq!(
        put(origin, "index.m3u8", listing(0, 5).as_bytes()).await,
        201
    );
    for n in 0..6 {
        assert_eq!(put(origin, &format!("s{n}.ts"), &body(n)).await, 201);
    }
}

/// The status of `GET s{n}.ts`.
async fn status(origin: &Running, n: u8) -> u16 {
    let path = format!("/hls/{STREAM}/s{n}.ts");
    origin.get(&path).await.status().as_u16()
}

fn small_memory() -> OriginConfig {
    OriginConfig {
        max_segment_bytes: 64 * 1024,
        max_memory_bytes: 256 * 1024,
        ..config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_segments_beyond_memory_are_served_from_the_spill_dir() {
    let (_dir, _broker, kafka) = broker().await;
    // Off by default: the memory bound evicts listed segments.
    let plain = Running::start(small_memory(), &kafka).await;
    publish_six(&plain).await;
    assert_eq!(
        (status(&plain, 0).await, status(&plain, 1).await),
        (404, 404)
    );
    let memory = r#"livepulse_origin_evictions_total{reason="memory"}"#;
    assert_eq!(plain.metric(memory).await, 2.0);
    plain.stop().await;

    let disk = tempfile::tempdir().unwrap();
    let dir = disk.path().join("spill");
    let cfg = OriginConfig {
        spill_dir: Some(dir.clone()),
        spill_max_bytes: 1024 * 1024,
        ..small_memory()
    };
    let origin = Running::start(cfg, &kafka).await;
    publish_six(&origin).await;
    // s0 and s1 went to disk instead, and are served the same.
    assert_eq!(spilled(&dir), 2);
    assert_eq!(
        origin
            .metric(r#"livepulse_origin_spills_total{result="ok"}"#)
            .await,
        2.0
    );
    assert_eq!(origin.metric(memory).await, 2.0, "none evicted here");
    assert_eq!(
        origin.metric("livepulse_origin_spill_bytes").await,
        120_000.0
    );
    for n in 0..6 {
        let response = origin.get(&format!("/hls/{STREAM}/s{n}.ts")).await;
        assert_eq!(response.status().as_u16(), 200, "s{n}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "video/mp2t");
        assert_eq!(headers["cache-control"], FINAL_CACHE);
        assert_eq!(headers["content-length"], "60000");
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert_eq!(response.bytes().await.unwrap(), body(n), "s{n}");
    }
    let head = origin
        .http
        .head(origin.url(&format!("/hls/{STREAM}/s0.ts")))
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["content-length"], "60000");
    let (_, playlist) = origin.get_ok(&format!("/hls/{STREAM}/index.m3u8")).await;
    assert_eq!(playlist, listing(0, 5).as_bytes());

    // Out of the playlist: off the disk.
    assert_eq!(
        put(&origin, "index.m3u8", listing(2, 5).as_bytes()).await,
        204
    );
    assert_eq!(spilled(&dir), 0);
    assert_eq!(status(&origin, 0).await, 404);
    assert_eq!(origin.metric("livepulse_origin_spill_bytes").await, 0.0);
    // Spilled again, then the stream goes: nothing left.
    assert_eq!(put(&origin, "s6.ts", &body(6)).await, 201);
    assert_eq!(spilled(&dir), 1);
    assert_eq!(status(&origin, 2).await, 200);
    let revoked = origin
        .http
        .delete(origin.url(&format!("/admin/streams/{STREAM}")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 204);
    assert_eq!(spilled(&dir), 0);
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_origin_leaves_nothing_on_disk() {
    let (_dir, _broker, kafka) = broker().await;
    let disk = tempfile::tempdir().unwrap();
    let dir = disk.path().join("spill");
    std::fs::create_dir(&dir).unwrap();
    // Left by a run that crashed: removed at start.
    std::fs::write(dir.join("0123456789abcdef.seg"), b"stale").unwrap();
    let cfg = OriginConfig {
        spill_dir: Some(dir.clone()),
        spill_max_bytes: 1024 * 1024,
        ..small_memory()
    };
    let origin = Running::start(cfg, &kafka).await;
    assert_eq!(spilled(&dir), 0);
    publish_six(&origin).await;
    assert_eq!(spilled(&dir), 2);
    origin.stop().await;
    assert_eq!(spilled(&dir), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_trusted_proxies_the_cohort_is_the_forwarded_client() {
    let (_dir, _broker, kafka) = broker().await;
    let cfg = OriginConfig {
        trusted_proxies: vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ],
        ..config()
    };
    let origin = Running::start(cfg, &kafka).await;
    for n in 1..=6 {
        assert_eq!(put(&origin, &format!("p{n}.ts"), &[0x47; 188]).await, 201);
    }
    let get = |n: u8, forwarded: &'static [&'static str]| {
        let mut request = origin
            .http
            .get(origin.url(&format!("/hls/{STREAM}/p{n}.ts")));
        for value in forwarded {
            request = request.header("x-forwarded-for", *value);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.bytes().await.unwrap();
        }
    };
    // Through two proxies; the client's own claim in front is ignored.
    get(1, &["198.51.100.1, 203.0.113.77, 10.0.0.1"]).await;
    // Two headers are one list.
    get(2, &["2001:db8:1:2::9", "10.1.2.3"]).await;
    // The proxy itself.
    get(3, &[]).await;
    // Garbage where the client should be.
    get(4, &["203.0.113.77, not-an-address"]).await;
    // Raw, with a port, as some proxies write it.
    let raw = format!(
        "GET /hls/{STREAM}/p5.ts HTTP/1.1\r\nHost: o\r\nX-Forwarded-For: [2001:db8:7::1]:4711\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(send_raw(origin.addr, raw.as_bytes()).await.0, 200);
    origin.stop().await;

    // Not from a trusted proxy: the header is the client's word, ignored.
    let untrusted = Running::start(config(), &kafka).await;
    let response = untrusted
        .http
        .get(untrusted.url(&format!("/hls/{STREAM}/p6.ts")))
        .header("x-forwarded-for", "203.0.113.77")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        404,
        "a new origin has no objects"
    );
    response.bytes().await.unwrap();
    untrusted.stop().await;

    let (requests, raw) = playback_requests(&kafka, |r| r.len() >= 6).await;
    let mut cohorts: Vec<(String, String)> = requests
        .iter()
        .map(|r| (r.object.clone(), r.client_cohort.clone()))
        .collect();
    cohorts.sort();
    let expected = [
        ("p1.ts", "203.0.113.0/24"),
        ("p2.ts", "2001:db8:1::/48"),
        ("p3.ts", "127.0.0.0/24"),
        ("p4.ts", "unknown"),
        ("p5.ts", "2001:db8:7::/48"),
        ("p6.ts", "127.0.0.0/24"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(o, c)| ((*o).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(cohorts, expected);
    // No address reaches Kafka.
    for value in &raw {
        let text = String::from_utf8_lossy(value);
        for address in [
            "203.0.113.77",
            "198.51.100.1",
            "2001:db8:1:2::9",
            "2001:db8:7::1",
            "10.0.0.1",
        ] {
            assert!(!text.contains(address), "{address} in {text}");
        }
    }
}
