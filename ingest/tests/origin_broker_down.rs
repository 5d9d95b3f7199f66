//! The origin with no broker at all: publishing and playback go on, the
//! request log is dropped and counted. Alone in its test binary because the
//! Prometheus recorder is process-global.

#[allow(dead_code)] // each test binary uses a different part of it
mod common;

use std::time::{Duration, Instant};

use common::origin::{KEY, Running, STREAM, config};
use livepulse_connectors::kafka::KafkaConfig;
use livepulse_ingest::origin::OriginConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_never_wait_on_kafka() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let cfg = OriginConfig {
        delivery_timeout_ms: 500,
        ..config()
    };
    let origin = Running::start(cfg, &KafkaConfig::local(format!("127.0.0.1:{port}"))).await;
    let put = origin
        .put(&format!("/live/{KEY}/720p/s1.m4s"), vec![5u8; 10_000])
        .await;
    assert_eq!(put.status().as_u16(), 201);

    let started = Instant::now();
    for _ in 0..20 {
        let (_, body) = origin.get_ok(&format!("/hls/{STREAM}/720p/s1.m4s")).await;
        assert_eq!(body.len(), 10_000);
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");

    let health = origin.get("/healthz").await;
    assert_eq!(health.status().as_u16(), 200);
    let text = health.text().await.unwrap();
    assert!(text.starts_with("ok; request log degraded"), "{text}");

    // Each request is counted once it is known to be lost.
    let dropped = r#"livepulse_origin_access_requests_dropped_total{reason="broker"}"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    while origin.metric(dropped).await < 20.0 {
        assert!(
            Instant::now() < deadline,
            "requests never counted as dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(origin.metric(dropped).await, 20.0);
    assert_eq!(
        origin
            .metric("livepulse_origin_access_requests_produced_total")
            .await,
        0.0
    );
    origin.stop().await;
}
