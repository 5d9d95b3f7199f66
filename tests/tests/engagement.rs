//! The engagement job, end to end on real parts: a seeded synthetic audience
//! (with duplicates, out-of-order events and some invalid ones) goes through
//! the collector, the tansu broker, the streaming job and ClickHouse 18.16;
//! every window row and every viewer session in ClickHouse must equal the
//! Polars batch recomputation.

use std::time::Duration;

use livepulse_contract::{Event, now_ms};
use livepulse_e2e::{oracle, stack};
use livepulse_ingest::collector::{Collector, CollectorConfig, WriteKey};
use livepulse_pipelines::jobs::engagement::Engagement;
use livepulse_pipelines::{Pipeline, PipelineConfig};
use livepulse_simulator::{Audience, AudienceConfig, CollectorClient};
use tokio_util::sync::CancellationToken;

const WRITE_KEY: &str = "e2e-write-key-0123456789";

/// Invalid events spliced into the stream, each with the rejection code the
/// collector must answer.
fn invalid_events(template: &Event<'static>) -> Vec<(Event<'static>, &'static str)> {
    let mut future = template.clone();
    future.event_id = "00000000-0000-4000-8000-0000000000f1".into();
    future.ts = now_ms() + 3_600_000;
    let mut bad_id = template.clone();
    bad_id.event_id = "not-a-uuid".into();
    let mut foreign = template.clone();
    foreign.event_id = "00000000-0000-4000-8000-0000000000f2".into();
    foreign.title = Some("a title on a player event".into());
    vec![
        (future, "ts_in_future"),
        (bad_id, "invalid_event_id"),
        (foreign, "field_not_allowed"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streaming_engagement_equals_the_batch_recomputation() {
    let stack = stack::start().await;
    let (kafka, clickhouse) = (stack.kafka.clone(), stack.clickhouse.clone());

    let shutdown = CancellationToken::new();
    let collector = Collector::new(
        CollectorConfig {
            write_keys: vec![WriteKey {
                name: "e2e".into(),
                key: WRITE_KEY.into(),
            }],
            ..CollectorConfig::default()
        },
        &kafka,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_url = format!("http://{}", listener.local_addr().unwrap());
    let collector_task =
        tokio::spawn(collector.serve(listener, shutdown.clone().cancelled_owned()));
    let checkpoints = tempfile::tempdir().unwrap();
    let pipeline_config = PipelineConfig {
        group_prefix: "e2e".into(),
        checkpoint_dir: checkpoints.path().to_owned(),
        allowed_lateness_ms: 5_000,
        idle_timeout_ms: 1_000,
        ..PipelineConfig::default()
    };
    let pipeline = Pipeline::new(
        pipeline_config,
        kafka.clone(),
        clickhouse.clone(),
        Engagement,
    );
    let pipeline_task = tokio::spawn(pipeline.run(shutdown.clone()));

    // Ten simulated minutes that ended a few minutes ago, on minute boundaries.
    let start_ms = (now_ms() - 15 * 60_000) / 60_000 * 60_000;
    let mut audience = AudienceConfig::new(7, 12, 800, start_ms);
    audience.duplicate_rate = 0.03;
    audience.max_disorder_ms = 3_000;
    let mut events = Audience::run_for(audience, 10 * 60_000).unwrap();
    assert!(
        events.len() > 30_000,
        "audience too small to mean anything: {}",
        events.len()
    );
    let invalid = invalid_events(events.iter().find(|e| e.session_id.is_some()).unwrap());
    let splice_at = [1_000, 15_000, 30_000];
    for ((event, _), at) in invalid.iter().zip(splice_at) {
        events.insert(at, event.clone());
    }

    let client = CollectorClient::new(&collector_url, WRITE_KEY).unwrap();
    let mut accepted: Vec<Event<'static>> = Vec::with_capacity(events.len());
    let mut rejected_codes = Vec::new();
    for (chunk_no, chunk) in events.chunks(500).enumerate() {
        let outcome = client.send(chunk).await.unwrap();
        let rejected: Vec<usize> = outcome.rejected.iter().map(|r| r.index).collect();
        for r in &outcome.rejected {
            rejected_codes.push((chunk_no * 500 + r.index, r.code.clone()));
        }
        assert_eq!(outcome.accepted, chunk.len() - rejected.len());
        accepted.extend(
            chunk
                .iter()
                .enumerate()
                .filter(|(i, _)| !rejected.contains(i))
                .map(|(_, e)| e.clone()),
        );
    }
    // Exactly the spliced events were rejected, each for its reason (the
    // spliced positions shift by one per earlier splice).
    let expected_codes: Vec<(usize, String)> = invalid
        .iter()
        .zip(splice_at)
        .map(|((_, code), at)| (at, (*code).to_owned()))
        .collect();
    assert_eq!(rejected_codes, expected_codes);

    let expected = oracle::engagement_job(&accepted).unwrap();

    let unstamped = stack::poll(
        Duration::from_secs(240),
        || stack::engagement_rows(&clickhouse),
        |rows| rows.len() >= expected.len(),
    )
    .await;
    assert_eq!(
        unstamped.len(),
        expected.len(),
        "row count: streaming vs batch"
    );
    for (got, want) in unstamped.iter().zip(&expected) {
        assert_eq!(got, want);
    }

    // Sessions close 30 s of event time after their last event, which the
    // idle watermark (the wall clock) passed long ago.
    let expected_sessions = oracle::viewer_sessions(&accepted).unwrap();
    let sessions = stack::poll(
        Duration::from_secs(60),
        || stack::viewer_sessions(&clickhouse),
        |rows| *rows == expected_sessions,
    )
    .await;
    assert_eq!(
        sessions.len(),
        expected_sessions.len(),
        "session count: streaming vs batch"
    );
    for (got, want) in sessions.iter().zip(&expected_sessions) {
        assert_eq!(got, want);
    }

    let distinct: std::collections::HashSet<&str> =
        accepted.iter().map(|e| e.event_id.as_ref()).collect();
    let raw = stack::distinct_raw_events(&clickhouse, distinct.len() as u64).await;
    assert_eq!(
        raw,
        distinct.len() as u64,
        "raw events table holds each accepted event once"
    );
    // Every field of every event, as the pipeline encoded it.
    let raw_rows = stack::raw_events(&clickhouse).await;
    let expected_raw = oracle::raw::event_rows(&accepted);
    assert_eq!(raw_rows.len(), expected_raw.len());
    for (got, want) in raw_rows.iter().zip(&expected_raw) {
        assert_eq!(got, want);
    }

    shutdown.cancel();
    let stats = pipeline_task.await.unwrap().unwrap();
    collector_task.await.unwrap().unwrap();
    assert_eq!(
        stats.too_late, 0,
        "no event may be past the correction horizon"
    );
    assert_eq!(
        stats.events,
        accepted.len() as u64,
        "the job read every accepted event once"
    );
    assert_eq!(stats.duplicates, (accepted.len() - distinct.len()) as u64);
    assert_eq!(stats.late_session_updates, 0);
}
