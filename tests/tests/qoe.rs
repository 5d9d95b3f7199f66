//! The QoE job, end to end on real parts: a seeded audience's player events
//! (with duplicates and out-of-order events) and the origin's CMCD request
//! log for its views (some with both sources, some from players without an
//! SDK, with requests logged twice) go through the tansu broker, the QoE job
//! and ClickHouse 18.16; every per-minute row, every view and the raw
//! request table must equal the batch recomputation.

use std::collections::HashSet;
use std::time::Duration;

use livepulse_connectors::kafka::idempotent_producer;
use livepulse_contract::{Family, now_ms, tables};
use livepulse_e2e::compare::differences;
use livepulse_e2e::oracle::qoe;
use livepulse_e2e::{feed, stack};
use livepulse_pipelines::jobs::qoe::Qoe;
use livepulse_pipelines::{Pipeline, PipelineConfig};
use livepulse_simulator::cmcd::{RequestLogConfig, request_log};
use livepulse_simulator::{Audience, AudienceConfig};
use tokio_util::sync::CancellationToken;

/// Asserts equal row lists, naming the first differing rows' fields.
fn assert_rows<T: serde::Serialize + std::fmt::Debug>(what: &str, got: &[T], want: &[T]) {
    let wrong: Vec<String> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter_map(|(i, (g, w))| {
            let diff = differences(g, w);
            (!diff.is_empty()).then(|| format!("{what} row {i}: {}", diff.join("; ")))
        })
        .take(5)
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: row count, streaming vs batch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streaming_qoe_equals_the_batch_recomputation() {
    let stack = stack::start().await;
    let (kafka, clickhouse) = (stack.kafka.clone(), stack.clickhouse.clone());

    // Eight simulated minutes that ended a few minutes ago, on minute boundaries.
    let start_ms = (now_ms() - 15 * 60_000) / 60_000 * 60_000;
    let mut audience = AudienceConfig::new(21, 6, 400, start_ms);
    audience.duplicate_rate = 0.03;
    audience.max_disorder_ms = 3_000;
    let events = Audience::run_for(audience, 8 * 60_000).unwrap();
    let log = request_log(&events, &RequestLogConfig::default());
    let players: HashSet<&str> = log
        .player_events
        .iter()
        .filter_map(|e| e.session_id.as_deref())
        .collect();
    let sdk_less = log
        .requests
        .iter()
        .filter_map(|r| r.cmcd.as_ref()?.session_id.as_deref())
        .filter(|s| !players.contains(s))
        .collect::<HashSet<_>>()
        .len();
    assert!(
        log.requests.len() > 20_000 && sdk_less > 50,
        "too small to mean anything: {} requests, {sdk_less} SDK-less views",
        log.requests.len()
    );

    let producer = idempotent_producer(&kafka, Duration::from_secs(30)).unwrap();
    feed::produce(&producer, &log.player_events).await;
    feed::produce_requests(&producer, &log.requests).await;

    let checkpoints = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let pipeline = Pipeline::new(
        PipelineConfig {
            group_prefix: "e2e".into(),
            checkpoint_dir: checkpoints.path().to_owned(),
            allowed_lateness_ms: 5_000,
            idle_timeout_ms: 1_000,
            ..PipelineConfig::default()
        },
        kafka.clone(),
        clickhouse.clone(),
        Qoe,
    );
    let pipeline_task = tokio::spawn(pipeline.run(shutdown.clone()));

    let expected = qoe::qoe_minutes(&log.player_events, &log.requests).unwrap();
    let minutes = stack::poll(
        Duration::from_secs(180),
        || stack::qoe_minutes(&clickhouse),
        |rows| rows.len() >= expected.len(),
    )
    .await;
    assert_rows("qoe_minutes", &minutes, &expected);

    // Views close a minute of event time after their last row, which the
    // idle watermark (the wall clock) passed long ago.
    let expected_views = qoe::qoe_views(&log.player_events, &log.requests);
    let views = stack::poll(
        Duration::from_secs(60),
        || stack::qoe_views(&clickhouse),
        |rows| rows.len() >= expected_views.len(),
    )
    .await;
    assert_rows("qoe_views", &views, &expected_views);
    let cmcd_only = views.iter().filter(|v| v.player_events == 0).count();
    assert_eq!(cmcd_only, sdk_less, "views known only from CMCD");
    assert!(views.iter().any(|v| v.start_failure) && views.iter().any(|v| v.exit_before_start));

    let distinct: HashSet<&str> = log.requests.iter().map(|r| r.request_id.as_str()).collect();
    let raw: u64 = clickhouse
        .client()
        .query(&format!(
            "SELECT count() FROM {} FINAL",
            tables::PLAYBACK_REQUESTS
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(raw, distinct.len() as u64, "each request kept once");

    shutdown.cancel();
    let stats = pipeline_task.await.unwrap().unwrap();
    assert_eq!(
        stats.too_late, 0,
        "nothing may be past the correction horizon"
    );
    let player_rows = log
        .player_events
        .iter()
        .filter(|e| e.family == Some(Family::Player))
        .count();
    assert_eq!(
        stats.events,
        (player_rows + log.requests.len()) as u64,
        "the job read every produced row once"
    );
    println!(
        "qoe e2e: {} minute rows, {} views ({cmcd_only} from CMCD only), {} requests ({} distinct)",
        minutes.len(),
        views.len(),
        log.requests.len(),
        distinct.len()
    );
}
