//! Freshness: how long after an event arrives its window's row is in
//! ClickHouse, through a private broker and ClickHouse with the pipeline
//! at its configured settings.
//!
//! Heartbeats of 100 streams are produced in real time at a fixed rate,
//! encoded as the collector does, each stamped with the time it is produced.
//! A poller reads the 10 s tumbling rows every 50 ms and notes when each
//! (stream, window) row first appears. An event's freshness is that moment
//! minus when the event was produced; the run reports percentiles over all
//! events against the target of the window length plus 1 s.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use livepulse_connectors::kafka::{idempotent_producer, send_all};
use livepulse_contract::{Event, Family, Kind, Limits, now_ms, tables};
use livepulse_ingest::collector::batch::{Record, pack, prepare};
use livepulse_pipelines::config::Assignment;
use livepulse_pipelines::jobs::engagement::Engagement;
use livepulse_pipelines::{Pipeline, PipelineConfig};
use tokio_util::sync::CancellationToken;

use super::{LocalStack, MAX_RECORD_BYTES};

const STREAMS: u64 = 100;
const WINDOW_MS: i64 = 10_000;
const TICK: Duration = Duration::from_millis(50);
const POLL: Duration = Duration::from_millis(50);

/// (stream, window start in epoch seconds) -> when its row was first seen.
type Seen = Arc<Mutex<HashMap<(String, u32), Instant>>>;

/// Produces `rate` events/s for `duration` and prints freshness percentiles.
pub(super) async fn run(config: &PipelineConfig, rate: u32, duration: Duration) -> Result<()> {
    let stack = LocalStack::start().await?;
    let shutdown = CancellationToken::new();
    let pipeline = Pipeline::new(
        PipelineConfig {
            group_prefix: "freshness".to_owned(),
            // One instance: no group coordination to wait for.
            assignment: Assignment::All,
            checkpoint_dir: stack.dir.path().join("checkpoints"),
            ..config.clone()
        },
        stack.kafka.clone(),
        stack.clickhouse.clone(),
        Engagement,
    );
    let pipeline = tokio::spawn(pipeline.run(shutdown.clone()));
    let seen: Seen = Arc::default();
    let poller = tokio::spawn(poll(
        stack.clickhouse.client(),
        Arc::clone(&seen),
        shutdown.clone(),
    ));
    // The pipeline needs a moment to join; events wait in the broker meanwhile.
    let producer = idempotent_producer(&stack.kafka, Duration::from_secs(30))?;
    let limits = Limits::default();
    let started = Instant::now();
    let mut produced: Vec<((String, u32), Instant)> = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    while started.elapsed() < duration {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64() * f64::from(rate)) as usize;
        let n = due.saturating_sub(produced.len());
        let (now, at) = (now_ms(), Instant::now());
        let elements: Vec<Vec<u8>> = (0..n)
            .map(|i| serde_json::to_vec(&heartbeat(produced.len() + i, now)))
            .collect::<Result<_, _>>()?;
        let elements: Vec<&[u8]> = elements.iter().map(Vec::as_slice).collect();
        let prepared = prepare(&elements, now, &limits);
        ensure!(
            prepared.rejected.is_empty(),
            "the collector would reject these events: {:?}",
            prepared.rejected
        );
        let records = pack(&prepared.accepted, now, MAX_RECORD_BYTES)?;
        send_all(
            &producer,
            records.iter().map(Record::parts),
            Duration::from_secs(30),
        )
        .await
        .context("producing")?;
        let (first, window) = (produced.len(), window_of(now));
        produced.extend((first..first + n).map(|i| ((stream(i), window), at)));
    }
    // Every window produced into closes within its length plus the lateness.
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let missing = {
            let seen = seen.lock().expect("poller");
            produced
                .iter()
                .filter(|(k, _)| !seen.contains_key(k))
                .count()
        };
        if missing == 0 || Instant::now() > deadline || poller.is_finished() {
            break missing;
        }
        tokio::time::sleep(POLL).await;
    };
    shutdown.cancel();
    poller.await?.context("reading rows from ClickHouse")?;
    pipeline.await??;
    drop(producer);
    stack.stop().await?;
    ensure!(missing == 0, "{missing} events never showed up in a row");

    let seen = seen.lock().expect("poller");
    let mut latencies: Vec<Duration> = produced
        .iter()
        .map(|(k, at)| seen[k].saturating_duration_since(*at))
        .collect();
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let target = Duration::from_millis(WINDOW_MS as u64 + 1_000);
    println!(
        "freshness:   {} events at {rate}/s for {} s, event -> 10 s window row in ClickHouse: \
         p50 {:.2} s, p99 {:.2} s, max {:.2} s (target: window + 1 s = {:.0} s; p99 {} it)",
        latencies.len(),
        duration.as_secs(),
        pct(0.5).as_secs_f64(),
        pct(0.99).as_secs_f64(),
        pct(1.0).as_secs_f64(),
        target.as_secs_f64(),
        if pct(0.99) <= target {
            "within"
        } else {
            "beyond"
        }
    );
    Ok(())
}

/// Notes when each 10 s window row first appears.
async fn poll(client: clickhouse::Client, seen: Seen, shutdown: CancellationToken) -> Result<()> {
    let query = format!(
        "SELECT stream_id, toUInt32(window_start) FROM {} WHERE window_seconds = 10",
        tables::STREAM_ENGAGEMENT
    );
    while !shutdown.is_cancelled() {
        let rows: Vec<(String, u32)> = client.query(&query).fetch_all().await?;
        let at = Instant::now();
        {
            let mut seen = seen.lock().expect("producer");
            for row in rows {
                seen.entry(row).or_insert(at);
            }
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(())
}

fn stream(n: usize) -> String {
    format!("fresh-{}", n as u64 % STREAMS)
}

/// Start of the 10 s window holding `ts`, epoch seconds.
fn window_of(ts: i64) -> u32 {
    u32::try_from((ts - ts.rem_euclid(WINDOW_MS)) / 1_000).unwrap_or(0)
}

/// Event `n`: a heartbeat of viewer `n % 5000` on its stream, at `ts`.
fn heartbeat(n: usize, ts: i64) -> Event<'static> {
    let viewer = n % 5_000;
    Event {
        event_id: Cow::Owned(uuid::Uuid::new_v4().to_string()),
        ts,
        stream_id: Cow::Owned(stream(n)),
        family: Some(Family::Player),
        event: Some(Kind::Heartbeat),
        session_id: Some(Cow::Owned(format!("p{viewer}"))),
        viewer_id: Some(Cow::Owned(format!("v{viewer}"))),
        played_ms: Some(10_000),
        bitrate_kbps: Some(3_000),
        buffer_ms: Some(8_000),
        ..Event::default()
    }
}
