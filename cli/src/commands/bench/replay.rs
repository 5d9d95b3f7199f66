//! The processing rate of the engagement job.
//!
//! 1. Replay: records encoded exactly as the collector encodes them, fed
//!    from memory through the same processor the pipeline runs (decode ->
//!    dedup -> DataFusion partial aggregates per pane -> windows merged ->
//!    result and raw-event rows), on one thread. Reported per CPU-second,
//!    i.e. per core.
//! 2. End to end: the same records produced to a private local broker, the
//!    pipeline running against it and a private ClickHouse, timed until every
//!    event is in ClickHouse.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use livepulse_connectors::kafka::{idempotent_producer, send_all};
use livepulse_contract::record::Payload;
use livepulse_contract::{Limits, tables};
use livepulse_ingest::collector::batch::{Packer, Record, prepare};
use livepulse_pipelines::jobs::engagement::Engagement;
use livepulse_pipelines::runtime::processor::{Lateness, Processor};
use livepulse_pipelines::sinks::row_binary::RowBinary;
use livepulse_pipelines::{Pipeline, PipelineConfig};
use livepulse_simulator::{Audience, AudienceConfig};
use tokio_util::sync::CancellationToken;

use super::{BenchArgs, LocalStack, MAX_RECORD_BYTES, cpu_time};

/// Events per request a client sends the collector.
const COLLECTOR_BATCH: usize = 500;

/// Runs the replay and (unless `--replay-only`) the end-to-end benchmark.
pub(super) async fn run(config: &PipelineConfig, args: &BenchArgs) -> Result<()> {
    let wanted = args.events.max(args.e2e_events);
    println!(
        "generating {wanted} events ({} streams, {} viewers)...",
        args.streams, args.viewers
    );
    let (records, events) = records(args, wanted)?;
    println!(
        "  {} Kafka records, {:.1} events per record",
        records.len(),
        events as f64 / records.len() as f64
    );

    let replay = replay(config, &records, args.events).await?;
    println!(
        "replay:      {} events in {:.2} s wall, {:.2} s CPU -> {:.0} events/s per core",
        replay.events,
        replay.wall.as_secs_f64(),
        replay.cpu.as_secs_f64(),
        replay.events as f64 / replay.cpu.as_secs_f64()
    );
    if !args.replay_only {
        let (n, elapsed) = end_to_end(config, &records, args.e2e_events).await?;
        println!(
            "end to end:  {n} events produced to the broker and landed in ClickHouse in {:.2} s -> {:.0} events/s",
            elapsed.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64()
        );
    }
    Ok(())
}

/// Records as the collector would produce them for a synthetic audience:
/// requests of [`COLLECTOR_BATCH`] events, packed across requests into one
/// record per (topic, partition) until it is full (a busy collector's
/// records; a quiet one's are smaller, closed by its linger).
fn records(args: &BenchArgs, wanted: usize) -> Result<(Vec<Record>, usize)> {
    let start_ms = 1_700_000_000_000;
    let mut audience = Audience::new(AudienceConfig::new(7, args.streams, args.viewers, start_ms))?;
    let limits = Limits {
        max_future_ms: i64::MAX / 4,
        max_past_ms: i64::MAX / 4,
    };
    let mut packer = Packer::new(MAX_RECORD_BYTES);
    let (mut records, mut events, mut until) = (Vec::new(), 0, start_ms);
    while events < wanted {
        until += 10_000;
        let batch = audience.events_until(until);
        for chunk in batch.chunks(COLLECTOR_BATCH) {
            let elements: Vec<Vec<u8>> = chunk
                .iter()
                .map(serde_json::to_vec)
                .collect::<Result<_, _>>()?;
            let elements: Vec<&[u8]> = elements.iter().map(Vec::as_slice).collect();
            let prepared = prepare(&elements, until, &limits);
            ensure!(
                prepared.rejected.is_empty(),
                "the simulator produced invalid events: {:?}",
                prepared.rejected
            );
            events += prepared.accepted.len();
            for event in &prepared.accepted {
                records.extend(packer.push(event, until)?);
            }
        }
    }
    records.extend(packer.finish()?);
    Ok((records, events))
}

struct Replay {
    events: usize,
    wall: Duration,
    cpu: Duration,
}

/// Feeds the first `limit` events' records through one processor.
async fn replay(config: &PipelineConfig, records: &[Record], limit: usize) -> Result<Replay> {
    let mut processor = Processor::new(Engagement, Lateness::from(config)).await?;
    let (cpu_start, wall_start) = (cpu_time()?, Instant::now());
    let mut events = 0;
    let (mut rows, mut raw, mut in_batch) = (0, RowBinary::default(), 0);
    for (offset, record) in records.iter().enumerate() {
        if events >= limit {
            break;
        }
        // One source: a replay has no partitions to wait for.
        let read = processor.read(Payload::Events, &record.payload, 0, offset as i64)?;
        (events, in_batch) = (events + read, in_batch + read);
        // The pipeline folds a batch in when it is full, and closes windows
        // every flush interval (less often than this at such a rate).
        if in_batch >= config.max_batch_events {
            rows += flush(&mut processor, &mut raw, None).await?;
            in_batch = 0;
        }
    }
    rows += flush(&mut processor, &mut raw, Some(i64::MAX / 2)).await?;
    let (wall, cpu) = (wall_start.elapsed(), cpu_time()? - cpu_start);
    ensure!(
        rows > 0 && processor.memory().panes == 0 && processor.memory().sessions == 0,
        "replay left windows open"
    );
    Ok(Replay { events, wall, cpu })
}

/// Ingests what was read, encoding the raw rows into `raw` (emptied after,
/// as the sink does once they are written), and closes the windows the
/// watermark (by default the processor's) passed; returns the rows emitted.
pub(super) async fn flush(
    processor: &mut Processor<Engagement>,
    raw: &mut RowBinary,
    watermark: Option<i64>,
) -> Result<usize> {
    processor.ingest(raw).await?;
    std::hint::black_box(raw.bytes());
    raw.clear();
    let now = Instant::now();
    let Some(watermark) = watermark.or_else(|| processor.watermarks().advance(now, 0)) else {
        return Ok(0);
    };
    let emission = processor.close(watermark, 0).await?;
    processor.emitted(&emission);
    Ok(std::hint::black_box(emission.rows).len()
        + std::hint::black_box(emission.session_rows).len())
}

/// Produces the records holding the first `limit` events to a private broker
/// with the pipeline running, and times until ClickHouse holds them all.
async fn end_to_end(
    config: &PipelineConfig,
    records: &[Record],
    limit: usize,
) -> Result<(usize, Duration)> {
    let stack = LocalStack::start().await?;
    let (kafka, clickhouse) = (&stack.kafka, &stack.clickhouse);

    let (mut taken, mut n) = (Vec::new(), 0);
    for record in records {
        if n >= limit {
            break;
        }
        n += record.events;
        taken.push(record);
    }
    let shutdown = CancellationToken::new();
    let pipeline = Pipeline::new(
        PipelineConfig {
            group_prefix: "bench".to_owned(),
            checkpoint_dir: stack.dir.path().join("checkpoints"),
            ..config.clone()
        },
        kafka.clone(),
        clickhouse.clone(),
        Engagement,
    );
    let pipeline = tokio::spawn(pipeline.run(shutdown.clone()));
    let producer = idempotent_producer(kafka, Duration::from_secs(30))?;
    let start = Instant::now();
    send_all(
        &producer,
        taken.iter().map(|r| r.parts()),
        Duration::from_secs(30),
    )
    .await
    .context("producing to the local broker")?;
    let produced = start.elapsed();
    println!(
        "  produced {n} events in {} records in {:.2} s",
        taken.len(),
        produced.as_secs_f64()
    );

    // Done when the raw table stops growing: the audience's duplicate sends
    // are dropped, so it settles a little below what was produced.
    let client = clickhouse.client();
    let query = format!("SELECT count() FROM {}", tables::EVENTS);
    let (mut landed, mut last_change) = (0u64, start.elapsed());
    loop {
        let now: u64 = client.query(&query).fetch_one().await?;
        if now != landed {
            (landed, last_change) = (now, start.elapsed());
        } else if landed as usize >= n - n / 10
            && start.elapsed() - last_change > Duration::from_secs(3)
        {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(900),
            "end-to-end run did not finish in 15 minutes ({landed} of {n} events)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let distinct: u64 = client
        .query(&format!("SELECT count() FROM {} FINAL", tables::EVENTS))
        .fetch_one()
        .await?;
    shutdown.cancel();
    pipeline.await??;
    // The producer goes first, so it does not report the broker's stop as an error.
    drop(producer);
    stack.stop().await?;
    println!(
        "  {distinct} distinct events in ClickHouse (the rest were the audience's duplicate sends)"
    );
    Ok((n, last_change))
}
