//! ClickHouse unavailable for a minute while events keep arriving: the job
//! must hold back (no checkpoint, so no offset moves past unwritten data),
//! retry, catch up when the server is back, and land exactly the rows the
//! Polars recomputation gives.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use livepulse_connectors::kafka::idempotent_producer;
use livepulse_contract::now_ms;
use livepulse_e2e::{feed, oracle, stack};
use livepulse_embedded::clickhouse::LocalClickHouse;
use livepulse_pipelines::config::Assignment;
use livepulse_pipelines::jobs::engagement::Engagement;
use livepulse_pipelines::{Pipeline, PipelineConfig};
use livepulse_simulator::{Audience, AudienceConfig};
use tokio_util::sync::CancellationToken;

const OUTAGE: Duration = Duration::from_secs(60);

fn checkpoints(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_minute_without_clickhouse_loses_and_double_counts_nothing() {
    let stack::Stack {
        kafka,
        clickhouse,
        server,
        broker: _broker,
        dirs: _dirs,
    } = stack::start().await;

    let state = tempfile::tempdir().unwrap();
    let config = PipelineConfig {
        group_id: "outage".into(),
        assignment: Assignment::All,
        checkpoint_dir: state.path().to_owned(),
        checkpoint_interval_ms: 500,
        idle_timeout_ms: 1_000,
        correction_horizon_ms: 3_600_000,
        ..PipelineConfig::default()
    };
    let shutdown = CancellationToken::new();
    let pipeline = Pipeline::new(config, kafka.clone(), clickhouse.clone(), Engagement);
    let pipeline = tokio::spawn(pipeline.run(shutdown.clone()));

    let start_ms = (now_ms() - 8 * 60_000) / 60_000 * 60_000;
    let mut audience = AudienceConfig::new(11, 6, 300, start_ms);
    audience.duplicate_rate = 0.03;
    audience.max_disorder_ms = 3_000;
    let events = Audience::run_for(audience, 4 * 60_000).unwrap();
    let expected = oracle::engagement_job(&events).unwrap();

    let producer = idempotent_producer(&kafka, Duration::from_secs(30)).unwrap();
    let (first, second) = events.split_at(events.len() / 2);
    feed::produce(&producer, first).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while stack::engagement_rows(&clickhouse).await.is_empty() {
        assert!(Instant::now() < deadline, "no rows before the outage");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (port, data_dir) = (server.http_port(), server.data_dir().to_owned());
    server.stop().await.unwrap();
    feed::produce(&producer, second).await;
    // Let a checkpoint that was already past its inserts finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let group_dir = state.path().join("outage");
    let before = checkpoints(&group_dir);
    tokio::time::sleep(OUTAGE).await;
    assert!(!pipeline.is_finished(), "the job gave up during the outage");
    assert_eq!(
        checkpoints(&group_dir),
        before,
        "no checkpoint (and so no offset commit) while ClickHouse is down"
    );

    let server = LocalClickHouse::start(&data_dir, port).await.unwrap();
    let actual = stack::poll(
        Duration::from_secs(120),
        || stack::engagement_rows(&clickhouse),
        |rows| *rows == expected,
    )
    .await;
    assert_eq!(
        actual.len(),
        expected.len(),
        "row count: streaming vs batch"
    );
    for (got, want) in actual.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    let distinct: BTreeSet<&str> = events.iter().map(|e| e.event_id.as_ref()).collect();
    let raw = stack::distinct_raw_events(&clickhouse).await;
    assert_eq!(
        raw,
        distinct.len() as u64,
        "raw events table holds each event once"
    );

    shutdown.cancel();
    let stats = pipeline.await.unwrap().unwrap();
    assert_eq!(stats.too_late, 0);
    assert_eq!(stats.events, events.len() as u64);
    server.stop().await.unwrap();
}
