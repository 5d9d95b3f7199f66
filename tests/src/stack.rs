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
use livepulse_sql::{EngagementRow, EventRow, QoeMinuteRow, QoeViewRow, ViewerSessionRow};
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

/// Events in the raw events table, each `event_id` once (`FINAL`), once
/// there are `expected` or 30 s have passed: a flush writes its raw rows
/// after its window rows.
///
/// # Panics
/// When the query fails.
pub async fn distinct_raw_events(clickhouse: &ClickHouseConfig, expected: u64) -> u64 {
    let count = || async {
        match clickhouse
            .client()
            .query(&format!("SELECT count() FROM {} FINAL", tables::EVENTS))
            .fetch_one()
            .await
        {
            Ok(n) => n,
            Err(e) => panic!("counting raw events: {e}"),
        }
    };
    poll(Duration::from_secs(30), count, |n| *n == expected).await
}

/// Rows of `table` read with `FINAL` (`filter` a WHERE clause or empty),
/// in `order`.
///
/// # Panics
/// When the query fails.
async fn final_rows<T>(
    clickhouse: &ClickHouseConfig,
    table: &str,
    filter: &str,
    order: &str,
) -> Vec<T>
where
    T: clickhouse::RowOwned + clickhouse::RowRead,
{
    let query = format!("SELECT ?fields FROM {table} FINAL {filter} ORDER BY {order}");
    match clickhouse.client().query(&query).fetch_all().await {
        Ok(rows) => rows,
        Err(e) => panic!("reading {table}: {e}"),
    }
}

/// The raw events table (`FINAL`), sorted by `event_id`, with
/// `received_ms` zeroed.
pub async fn raw_events(clickhouse: &ClickHouseConfig) -> Vec<EventRow> {
    let rows: Vec<EventRow> = final_rows(clickhouse, tables::EVENTS, "", "event_id").await;
    rows.into_iter()
        .map(|row| EventRow {
            received_ms: 0,
            ..row
        })
        .collect()
}

/// The live rows of the viewer sessions table (`FINAL`, retractions left
/// out), sorted by (stream, viewer, start), with `emitted_ms` zeroed.
pub async fn viewer_sessions(clickhouse: &ClickHouseConfig) -> Vec<ViewerSessionRow> {
    let rows: Vec<ViewerSessionRow> = final_rows(
        clickhouse,
        tables::VIEWER_SESSIONS,
        "WHERE events > 0",
        "stream_id, viewer_id, session_start_ms",
    )
    .await;
    rows.into_iter()
        .map(|row| ViewerSessionRow {
            emitted_ms: 0,
            ..row
        })
        .collect()
}

/// The rows of the engagement table (`FINAL`), sorted by (window seconds,
/// stream, window start), with `emitted_ms` zeroed.
pub async fn engagement_rows(clickhouse: &ClickHouseConfig) -> Vec<EngagementRow> {
    let rows: Vec<EngagementRow> = final_rows(
        clickhouse,
        tables::STREAM_ENGAGEMENT,
        "",
        "window_seconds, stream_id, window_start",
    )
    .await;
    rows.into_iter()
        .map(|row| EngagementRow {
            emitted_ms: 0,
            ..row
        })
        .collect()
}

/// The rows of the QoE job's minute table (`FINAL`), sorted as the oracle
/// sorts them, with `emitted_ms` zeroed.
pub async fn qoe_minutes(clickhouse: &ClickHouseConfig) -> Vec<QoeMinuteRow> {
    let rows: Vec<QoeMinuteRow> = final_rows(
        clickhouse,
        tables::QOE_MINUTES,
        "",
        "window_start, stream_id, rendition, device, cdn, region, network",
    )
    .await;
    rows.into_iter()
        .map(|row| QoeMinuteRow {
            emitted_ms: 0,
            ..row
        })
        .collect()
}

/// The live views of the QoE job (`FINAL`, retractions left out), sorted
/// by (stream, session, first event), with `emitted_ms` zeroed.
pub async fn qoe_views(clickhouse: &ClickHouseConfig) -> Vec<QoeViewRow> {
    let rows: Vec<QoeViewRow> = final_rows(
        clickhouse,
        tables::QOE_VIEWS,
        "WHERE events > 0",
        "stream_id, session_id, first_event_ms",
    )
    .await;
    rows.into_iter()
        .map(|row| QoeViewRow {
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
