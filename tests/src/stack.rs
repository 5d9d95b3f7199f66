//! The real parts a pipeline test runs against: a tansu broker and a private
//! ClickHouse 18.16 on loopback, with the project's topics and migrations.

use std::future::Future;
use std::time::{Duration, Instant};

use livepulse_connectors::clickhouse::ClickHouseConfig;
use livepulse_connectors::kafka::{KafkaConfig, ensure_topics};
use livepulse_contract::{tables, topics};
use livepulse_embedded::broker::LocalBroker;
use livepulse_embedded::clickhouse::LocalClickHouse;
use livepulse_embedded::testing;
use livepulse_sql::{EngagementRow, ViewerSessionRow};
use tempfile::TempDir;

/// A running broker and ClickHouse; both stop when this is dropped.
pub struct Stack {
    /// Client settings for the broker.
    pub kafka: KafkaConfig,
    /// Client settings for ClickHouse, as the read-write user.
    pub clickhouse: ClickHouseConfig,
    /// The broker.
    pub broker: LocalBroker,
    /// The ClickHouse server (a test may stop and restart it).
    pub server: LocalClickHouse,
    /// The servers' data directories.
    pub dirs: (TempDir, TempDir),
}

/// Starts both servers, creates the topics and applies the migrations.
///
/// # Panics
/// When a server cannot start or a setup step fails.
pub async fn start() -> Stack {
    let (broker_dir, broker) = testing::broker().await;
    let (clickhouse_dir, server) = testing::clickhouse().await;
    let kafka = KafkaConfig::local(broker.bootstrap_servers());
    if let Err(e) = ensure_topics(&kafka, &topics::ALL).await {
        panic!("creating topics: {e}");
    }
    let clickhouse = ClickHouseConfig {
        url: server.http_url(),
        database: "livepulse".into(),
        user: server.writer().user.clone(),
        password: server.writer().password.clone(),
    };
    if let Err(e) = livepulse_sql::migrate(&clickhouse).await {
        panic!("migrating ClickHouse: {e}");
    }
    Stack {
        kafka,
        clickhouse,
        broker,
        server,
        dirs: (broker_dir, clickhouse_dir),
    }
}

/// Events in the raw events table, each `event_id` once (`FINAL`).
///
/// # Panics
/// When the query fails.
pub async fn distinct_raw_events(clickhouse: &ClickHouseConfig) -> u64 {
    match clickhouse
        .client()
        .query(&format!("SELECT count() FROM {} FINAL", tables::EVENTS))
        .fetch_one()
        .await
    {
        Ok(n) => n,
        Err(e) => panic!("counting raw events: {e}"),
    }
}

/// The live rows of the viewer sessions table (`FINAL`, retractions left
/// out), sorted by (stream, viewer, start), with `emitted_ms` zeroed.
///
/// # Panics
/// When the query fails.
pub async fn viewer_sessions(clickhouse: &ClickHouseConfig) -> Vec<ViewerSessionRow> {
    let rows: Vec<ViewerSessionRow> = match clickhouse
        .client()
        .query(&format!(
            "SELECT ?fields FROM {} FINAL WHERE events > 0 \
             ORDER BY stream_id, viewer_id, session_start_ms",
            tables::VIEWER_SESSIONS
        ))
        .fetch_all()
        .await
    {
        Ok(rows) => rows,
        Err(e) => panic!("reading viewer sessions: {e}"),
    };
    rows.into_iter()
        .map(|row| ViewerSessionRow {
            emitted_ms: 0,
            ..row
        })
        .collect()
}

/// The rows of the engagement table (`FINAL`), sorted by (window seconds,
/// stream, window start), with `emitted_ms` zeroed.
///
/// # Panics
/// When the query fails.
pub async fn engagement_rows(clickhouse: &ClickHouseConfig) -> Vec<EngagementRow> {
    let rows: Vec<EngagementRow> = match clickhouse
        .client()
        .query(&format!(
            "SELECT ?fields FROM {} FINAL ORDER BY window_seconds, stream_id, window_start",
            tables::STREAM_ENGAGEMENT
        ))
        .fetch_all()
        .await
    {
        Ok(rows) => rows,
        Err(e) => panic!("reading engagement rows: {e}"),
    };
    rows.into_iter()
        .map(|row| EngagementRow {
            emitted_ms: 0,
            ..row
        })
        .collect()
}

/// Calls `read` every 500 ms until `done` accepts its answer or `timeout`
/// passes, and returns the last answer (the caller asserts on it).
pub async fn poll<T, F, Fut>(timeout: Duration, mut read: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let answer = read().await;
        if done(&answer) || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
