//! `/metrics` after known traffic. Alone in its test binary because the
//! Prometheus recorder is process-global: exact counts need a process of
//! their own.

#[allow(dead_code)] // each test binary uses a different part of it
mod common;

use common::{Running, broker, chat_like, config, now_ms, player};
use livepulse_connectors::kafka::KafkaConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_events_records_and_broker_errors() {
    let (_dir, _broker, kafka) = broker().await;
    let up = Running::start(config(), &kafka).await;
    let mut future = chat_like("s1");
    future["ts"] = serde_json::json!(now_ms() + 3_600_000);
    let batch = [
        chat_like("s1"),
        chat_like("s2"),
        player("s1", "start"),
        future,
    ];
    assert_eq!(up.post(&batch).await.status().as_u16(), 200);
    let unauthenticated = up
        .http
        .post(format!("{}/v1/events", up.base))
        .body("[]")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);

    // A second collector in the process shares the recorder.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = Running::start(config(), &KafkaConfig::local(format!("127.0.0.1:{port}"))).await;
    assert_eq!(down.post(&[chat_like("s1")]).await.status().as_u16(), 503);

    let response = up.get("/metrics").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    for line in [
        r#"livepulse_collector_requests_total{status="200"} 1"#,
        r#"livepulse_collector_requests_total{status="401"} 1"#,
        r#"livepulse_collector_requests_total{status="503"} 1"#,
        "livepulse_collector_events_accepted_total 3",
        r#"livepulse_collector_events_rejected_total{code="ts_in_future"} 1"#,
        r#"livepulse_collector_records_produced_total{topic="livepulse.chat.v1"} 2"#,
        r#"livepulse_collector_records_produced_total{topic="livepulse.player.v1"} 1"#,
        "livepulse_collector_broker_errors_total 1",
        r#"livepulse_collector_produce_duration_seconds_bucket{le="+Inf"} 2"#,
        "livepulse_collector_produce_duration_seconds_count 2",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    // Rejections of other codes were never counted.
    assert_eq!(
        text.matches("livepulse_collector_events_rejected_total{")
            .count(),
        1
    );
    up.stop().await;
    down.stop().await;
}
