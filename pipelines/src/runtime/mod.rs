//! The streaming runtime: one loop per pipeline instance that reads Kafka,
//! decodes to Arrow, windows by event time, aggregates with DataFusion,
//! writes ClickHouse and only then commits offsets.

pub mod columns;
pub mod decode;
pub mod engine;
pub mod processor;
mod raw;
pub mod watermark;
pub mod window;

use std::time::{Duration, Instant};

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use livepulse_connectors::clickhouse::ClickHouseConfig;
use livepulse_connectors::kafka::KafkaConfig;
use livepulse_contract::{now_ms, tables};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::processor::Processor;
use crate::config::{PipelineConfig, PipelineConfigError};
use crate::jobs::Job;
use crate::sinks::clickhouse::{ClickHouseSink, SinkError};
use crate::sources::kafka::KafkaSource;

/// Why a pipeline stopped before being asked to.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] PipelineConfigError),
    /// Kafka refused to subscribe or commit.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Arrow could not build or slice a batch (a bug, not bad input).
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// The job's SQL failed.
    #[error("job SQL failed: {0}")]
    Sql(#[from] DataFusionError),
    /// ClickHouse kept failing until shutdown.
    #[error(transparent)]
    Sink(#[from] SinkError),
}

/// Counters of one run, returned when the pipeline stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Kafka records read.
    pub records: u64,
    /// Records that were not event batches (skipped, counted).
    pub undecodable_records: u64,
    /// Events decoded.
    pub events: u64,
    /// Events dropped as repeats of an event already in an open window.
    pub duplicates: u64,
    /// Events whose windows had closed (kept in the raw table only).
    pub late: u64,
    /// Result rows written.
    pub rows_written: u64,
    /// Offset commits made.
    pub commits: u64,
}

/// One pipeline instance running one job.
pub struct Pipeline<J: Job> {
    config: PipelineConfig,
    kafka: KafkaConfig,
    clickhouse: ClickHouseConfig,
    job: J,
}

impl<J: Job> Pipeline<J> {
    /// A pipeline for `job`; nothing connects until [`Pipeline::run`].
    pub fn new(
        config: PipelineConfig,
        kafka: KafkaConfig,
        clickhouse: ClickHouseConfig,
        job: J,
    ) -> Self {
        Self {
            config,
            kafka,
            clickhouse,
            job,
        }
    }

    /// Runs until `shutdown` is cancelled. Windows still open at shutdown are
    /// not emitted and their offsets not committed: the next run replays them.
    pub async fn run(self, shutdown: CancellationToken) -> Result<PipelineStats, PipelineError> {
        self.config.validate()?;
        let topics = self.job.topics();
        let source = KafkaSource::subscribe(&self.kafka, &self.config.group_id, &topics)?;
        info!(job = self.job.name(), group = %self.config.group_id, ?topics, "pipeline started");
        let mut run = Run {
            processor: Processor::new(
                self.job,
                self.config.allowed_lateness_ms,
                Duration::from_millis(self.config.idle_timeout_ms),
            ),
            sink: ClickHouseSink::new(self.clickhouse.client(), shutdown.clone()),
            stats: PipelineStats::default(),
            source,
            records_in_batch: 0,
        };
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.flush_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    run.flush().await?;
                    // A full interval of reading follows every flush, however
                    // long the flush took, so flushing cannot starve reading.
                    tick.reset();
                }
                message = run.source.recv() => match message {
                    Ok(message) => {
                        run.read(&message);
                        if run.records_in_batch >= self.config.max_batch_records {
                            run.ingest().await?;
                        }
                    }
                    Err(e) => warn!(error = %e, "kafka consumer error"),
                },
            }
        }
        info!(job = run.processor.job().name(), stats = ?run.stats, "pipeline stopped");
        Ok(run.stats)
    }
}

/// State of one run.
struct Run<J: Job> {
    source: KafkaSource,
    processor: Processor<J>,
    sink: ClickHouseSink,
    stats: PipelineStats,
    records_in_batch: usize,
}

impl<J: Job> Run<J> {
    fn read(&mut self, message: &OwnedMessage) {
        let id = self.source.source_id(message.topic(), message.partition());
        self.stats.records += 1;
        self.records_in_batch += 1;
        match self
            .processor
            .read(message.payload().unwrap_or_default(), id, message.offset())
        {
            Ok(n) => self.stats.events += n as u64,
            Err(e) => {
                self.stats.undecodable_records += 1;
                metrics::counter!("livepulse_pipeline_undecodable_records_total").increment(1);
                warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(), error = %e, "skipped undecodable record");
            }
        }
        self.source.mark_read(id, message.offset());
    }

    /// Moves decoded rows into the windows and the raw events table.
    async fn ingest(&mut self) -> Result<(), PipelineError> {
        self.records_in_batch = 0;
        let ingested = self.processor.ingest()?;
        self.stats.duplicates += ingested.duplicates as u64;
        self.stats.late += ingested.late as u64;
        metrics::counter!("livepulse_pipeline_duplicate_events_total")
            .increment(ingested.duplicates as u64);
        metrics::counter!("livepulse_pipeline_late_events_total").increment(ingested.late as u64);
        self.sink.insert(tables::EVENTS, &ingested.raw_rows).await?;
        Ok(())
    }

    /// Closes the windows the watermark has passed, writes them, commits.
    async fn flush(&mut self) -> Result<(), PipelineError> {
        self.ingest().await?;
        let now = Instant::now();
        match self.source.assigned() {
            Ok(ids) => ids
                .into_iter()
                .for_each(|id| self.processor.watermarks().assign(id, now)),
            Err(e) => {
                warn!(error = %e, "cannot read the partition assignment; retrying next flush")
            }
        }
        let silent = self.processor.watermarks().silent(now);
        for (id, caught_up) in self.source.caught_up(&silent).await {
            match caught_up {
                Ok(true) => self.processor.watermarks().set_caught_up(id),
                Ok(false) => {}
                Err(e) => debug!(error = %e, "could not fetch watermarks"),
            }
        }
        let job = self.processor.job().name();
        if let Some(watermark) = self.processor.watermarks().advance(now, now_ms()) {
            let emission = self.processor.close(watermark, now_ms()).await?;
            self.sink
                .insert(self.processor.job().table(), &emission.rows)
                .await?;
            self.processor.emitted(&emission)?;
            self.stats.rows_written += emission.rows.len() as u64;
            metrics::counter!("livepulse_pipeline_rows_written_total", "job" => job)
                .increment(emission.rows.len() as u64);
            metrics::gauge!("livepulse_pipeline_watermark_ms", "job" => job).set(watermark as f64);
        }
        metrics::gauge!("livepulse_pipeline_pending_events", "job" => job)
            .set(self.processor.pending_events() as f64);
        // A failed commit only means more replay after a crash, which the
        // idempotent sinks absorb; the next flush commits again.
        match self.source.commit(&self.processor.lowest_pending_offsets()) {
            Ok(0) => {}
            Ok(_) => self.stats.commits += 1,
            Err(e) => warn!(error = %e, "offset commit failed; retrying next flush"),
        }
        Ok(())
    }
}
