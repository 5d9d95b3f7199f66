//! A minute without ClickHouse, and a minute without the broker, while the
//! job runs: it must hold back, retry, catch up when the part is back, and
//! land exactly the rows the Polars recomputation gives.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use livepulse_connectors::clickhouse::ClickHouseConfig;
use livepulse_connectors::kafka::idempotent_producer;
use livepulse_contract::{Event, now_ms};
use livepulse_e2e::{feed, oracle, stack};
use livepulse_embedded::broker::LocalBroker;
use livepulse_embedded::clickhouse::LocalClickHouse;
use livepulse_pipelines::config::Assignment;
use livepulse_pipelines::jobs::engagement::Engagement;
use livepulse_pipelines::{Pipeline, PipelineConfig, PipelineError, PipelineStats};
use livepulse_simulator::{Audience, AudienceConfig};
use rdkafka::producer::FutureProducer;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const OUTAGE: Duration = Duration::from_secs(60);

/// A running engagement job over a seeded audience whose first half is
/// already landed, ready for an outage.
struct Harness {
    clickhouse: ClickHouseConfig,
    /// `None` while the test has it stopped.
    broker: Option<LocalBroker>,
    /// `None` while the test has it stopped.
    server: Option<LocalClickHouse>,
    events: Vec<Event<'static>>,
    second_half: usize,
    producer: FutureProducer,
    checkpoints: PathBuf,
    shutdown: CancellationToken,
    pipeline: JoinHandle<Result<PipelineStats, PipelineError>>,
    _dirs: [TempDir; 3],
}

impl Harness {
    /// Starts the stack and the job (named `group`), produces the first half
    /// of the events and waits for the first rows.
    async fn start(group: &str, seed: u64) -> Self {
        let stack::Stack {
            kafka,
            clickhouse,
            broker,
            server,
            dirs,
        } = stack::start().await;
        let state = tempfile::tempdir().unwrap();
        let config = PipelineConfig {
            group_prefix: group.into(),
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
        let mut audience = AudienceConfig::new(seed, 6, 300, start_ms);
        audience.duplicate_rate = 0.03;
        audience.max_disorder_ms = 3_000;
        let events = Audience::run_for(audience, 4 * 60_000).unwrap();

        let producer = idempotent_producer(&kafka, Duration::from_secs(30)).unwrap();
        let second_half = events.len() / 2;
        feed::produce(&producer, &events[..second_half]).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while stack::engagement_rows(&clickhouse).await.is_empty() {
            assert!(Instant::now() < deadline, "no rows before the outage");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Self {
            checkpoints: state.path().join(group),
            clickhouse,
            broker: Some(broker),
            server: Some(server),
            events,
            second_half,
            producer,
            shutdown,
            pipeline,
            _dirs: [dirs.0, dirs.1, state],
        }
    }

    async fn produce_second_half(&self) {
        feed::produce(&self.producer, &self.events[self.second_half..]).await;
    }

    /// The checkpoint files written so far.
    fn checkpoints(&self) -> BTreeSet<String> {
        list(&self.checkpoints)
    }

    /// Waits out the outage and checks the job is still there.
    async fn outage(&self) {
        tokio::time::sleep(OUTAGE).await;
        assert!(
            !self.pipeline.is_finished(),
            "the job gave up during the outage"
        );
    }

    /// Waits until ClickHouse holds exactly the recomputed rows, each raw
    /// event once, then stops the job and checks its counters.
    async fn assert_exact(self) {
        let expected = oracle::engagement_job(&self.events).unwrap();
        let clickhouse = &self.clickhouse;
        let actual = stack::poll(
            Duration::from_secs(120),
            || stack::engagement_rows(clickhouse),
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
        let distinct: BTreeSet<&str> = self.events.iter().map(|e| e.event_id.as_ref()).collect();
        let raw = stack::distinct_raw_events(clickhouse, distinct.len() as u64).await;
        assert_eq!(
            raw,
            distinct.len() as u64,
            "raw events table holds each event once"
        );

        self.shutdown.cancel();
        let stats = self.pipeline.await.unwrap().unwrap();
        assert_eq!(stats.too_late, 0);
        assert_eq!(stats.events, self.events.len() as u64);
    }
}

fn list(dir: &Path) -> BTreeSet<String> {
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
    let mut harness = Harness::start("outage-clickhouse", 11).await;
    let server = harness.server.take().unwrap();
    let (port, data_dir) = (server.http_port(), server.data_dir().to_owned());
    server.stop().await.unwrap();
    harness.produce_second_half().await;
    // Let a checkpoint that was already past its inserts finish.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = harness.checkpoints();
    harness.outage().await;
    assert_eq!(
        harness.checkpoints(),
        before,
        "no checkpoint (and so no offset commit) while ClickHouse is down"
    );

    harness.server = Some(LocalClickHouse::start(&data_dir, port).await.unwrap());
    harness.assert_exact().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_minute_without_the_broker_loses_and_double_counts_nothing() {
    let mut harness = Harness::start("outage-broker", 12).await;
    let broker = harness.broker.take().unwrap();
    let (port, data_dir) = (broker.port(), broker.data_dir().to_owned());
    broker.stop().await.unwrap();
    harness.outage().await;

    harness.broker = Some(LocalBroker::start(&data_dir, port).await.unwrap());
    harness.produce_second_half().await;
    harness.assert_exact().await;
}
