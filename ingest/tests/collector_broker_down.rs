//! The collector while the broker is away: 503 with `Retry-After` within the
//! delivery timeout, and recovery once a broker is back.

#[allow(dead_code)] // each test binary uses a different part of it
mod common;

use std::time::{Duration, Instant};

use common::{Running, broker, chat_like, config, consume_all, events_by_topic_and_stream};
use livepulse_connectors::kafka::KafkaConfig;
use livepulse_contract::topics::CHAT_EVENTS;
use livepulse_embedded::broker::LocalBroker;
use livepulse_ingest::collector::{CollectorConfig, ErrorResponse};

/// Posts one event and checks the answer is a 503 with `Retry-After: 7`
/// that arrived within the 2 s delivery timeout (plus slack for a busy
/// machine).
async fn assert_unavailable(collector: &Running) {
    let started = Instant::now();
    let response = collector.post(&[chat_like("s1")]).await;
    let waited = started.elapsed();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: ErrorResponse = response.json().await.unwrap();
    assert!(
        body.error.starts_with("events not stored, retry later: "),
        "{}",
        body.error
    );
    assert!(waited < Duration::from_millis(4500), "{waited:?}");
}

fn cfg() -> CollectorConfig {
    CollectorConfig {
        retry_after_secs: 7,
        ..config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_gets_503_with_retry_after() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let collector = Running::start(cfg(), &KafkaConfig::local(format!("127.0.0.1:{port}"))).await;
    assert_unavailable(&collector).await;
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_broker_gets_503_then_the_collector_recovers() {
    let (dir, first, kafka) = broker().await;
    let port = first.port();
    let collector = Running::start(cfg(), &kafka).await;
    let before = chat_like("s1");
    let response = collector.post(std::slice::from_ref(&before)).await;
    assert_eq!(response.status().as_u16(), 200);

    first.stop().await.unwrap();
    assert_unavailable(&collector).await;
    assert_eq!(collector.get("/healthz").await.status().as_u16(), 503);

    // The same broker comes back (same data, same port).
    let _second = LocalBroker::start(dir.path(), port).await.unwrap();
    let after = chat_like("s1");
    let started = Instant::now();
    loop {
        let response = collector.post(std::slice::from_ref(&after)).await;
        if response.status().as_u16() == 200 {
            break;
        }
        assert_eq!(response.status().as_u16(), 503);
        assert!(started.elapsed() < Duration::from_secs(30), "no recovery");
    }
    println!(
        "recovered {:?} after the broker restarted",
        started.elapsed()
    );
    assert_eq!(collector.get("/healthz").await.status().as_u16(), 200);

    // Both acknowledged events are stored; the one answered 503 may or may
    // not be (a client retry would make that harmless).
    let got = events_by_topic_and_stream(&consume_all(&kafka).await);
    let stream = &got[&(CHAT_EVENTS.name.to_owned(), "s1".to_owned())];
    assert_eq!(stream.first(), Some(&before));
    assert_eq!(stream.last(), Some(&after));
    assert_eq!(got.len(), 1, "{got:?}");
    collector.stop().await;
}
