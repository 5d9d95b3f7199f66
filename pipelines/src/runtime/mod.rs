//! The streaming runtime: one loop per pipeline instance that reads Kafka,
//! decodes to Arrow, folds events into window state with DataFusion's
//! partial aggregation, emits due windows to ClickHouse, and checkpoints
//! state with its source offsets before committing them.

pub mod checkpoint;
pub mod columns;
pub mod crashpoint;
pub mod decode;
pub mod engine;
pub mod processor;
mod raw;
pub mod session;
pub mod state;
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
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::checkpoint::{CheckpointError, CheckpointStore, SourceOffset};
use self::processor::{Lateness, Processor};
use self::window::WindowSpecError;
use crate::config::{Assignment, PipelineConfig, PipelineConfigError};
use crate::jobs::Job;
use crate::sinks::clickhouse::{ClickHouseSink, SinkError};
use crate::sinks::dead_letter::{DeadLetterSink, Origin};
use crate::sources::kafka::KafkaSource;

/// Why a pipeline stopped before being asked to.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] PipelineConfigError),
    /// A job declares a window the runtime cannot compute.
    #[error(transparent)]
    Window(#[from] WindowSpecError),
    /// Kafka refused to subscribe or commit.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// Arrow could not build or slice a batch (a bug, not bad input).
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
    /// The job's SQL failed.
    #[error("job SQL failed: {0}")]
    Sql(#[from] DataFusionError),
    /// ClickHouse or the dead-letter topic kept failing until shutdown.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// A checkpoint could not be written or restored.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// Counters of one run, returned when the pipeline stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Kafka records read.
    pub records: u64,
    /// Records skipped because the restored checkpoint already holds them.
    pub replayed_records: u64,
    /// Records that were not event batches (dead-lettered).
    pub undecodable_records: u64,
    /// Events decoded.
    pub events: u64,
    /// Events dropped as repeats of an event already counted.
    pub duplicates: u64,
    /// Events that corrected an already emitted window.
    pub corrections: u64,
    /// Events past the correction horizon (dead-lettered).
    pub too_late: u64,
    /// Result rows written.
    pub rows_written: u64,
    /// Session rows written (sessions, corrections and retractions).
    pub session_rows_written: u64,
    /// Session state rows dropped as beyond the correction horizon.
    pub late_session_updates: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
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

    /// Runs until `shutdown` is cancelled, then checkpoints once more.
    /// Starts from the newest checkpoint in the checkpoint directory.
    pub async fn run(self, shutdown: CancellationToken) -> Result<PipelineStats, PipelineError> {
        let config = self.config;
        config.validate()?;
        let name = self.job.name();
        let topics = self.job.topics();
        let mut processor = Processor::new(self.job, Lateness::from(&config)).await?;
        let store = CheckpointStore::open(config.checkpoint_dir.join(&config.group_id))?;
        let restored = store.latest(&processor.window_names())?;
        let resume = restored
            .as_ref()
            .map(|c| c.meta.offsets.clone())
            .unwrap_or_default();
        let mut source = match config.assignment {
            Assignment::Group => KafkaSource::subscribe(&self.kafka, &config.group_id, &topics)?,
            Assignment::All => {
                KafkaSource::assign_all(&self.kafka, &config.group_id, &topics, &resume)?
            }
        };
        source.resume_from(&resume);
        if let Some(checkpoint) = restored {
            info!(id = checkpoint.meta.id, watermark = ?checkpoint.meta.watermark, "restoring checkpoint");
            processor.restore(checkpoint).await?;
        }
        info!(job = name, group = %config.group_id, ?topics, checkpoints = %store.dir().display(), "pipeline started");
        let mut run = Run {
            processor,
            sink: ClickHouseSink::new(self.clickhouse.client(), shutdown.clone()),
            dead_letters: DeadLetterSink::new(&self.kafka, name, shutdown.clone())?,
            stats: PipelineStats::default(),
            source,
            store,
            records_in_batch: 0,
            last_checkpoint: Instant::now(),
            saving: None,
        };
        let mut tick = tokio::time::interval(Duration::from_millis(config.flush_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let checkpoint_every = Duration::from_millis(config.checkpoint_interval_ms);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    run.flush().await?;
                    if run.saving.as_ref().is_some_and(|s| s.is_finished()) {
                        run.checkpoint_written().await?;
                    }
                    if run.last_checkpoint.elapsed() >= checkpoint_every {
                        run.checkpoint().await?;
                    }
                    // A full interval of reading follows every flush, however
                    // long the flush took, so flushing cannot starve reading.
                    tick.reset();
                }
                message = run.source.recv() => match message {
                    Ok(message) => {
                        run.read(&message).await?;
                        if run.records_in_batch >= config.max_batch_records {
                            run.ingest().await?;
                        }
                    }
                    Err(e) => warn!(error = %e, "kafka consumer error"),
                },
            }
        }
        // What was read is kept: the next start resumes here, not at the
        // previous checkpoint. Sinks may be unreachable by now; then the next
        // start replays from the previous checkpoint instead.
        let last = match run.checkpoint().await {
            Ok(()) => run.checkpoint_written().await,
            Err(e) => Err(e),
        };
        if let Err(e) = last {
            warn!(error = %e, "no checkpoint at shutdown; the next start replays from the previous one");
        }
        info!(job = name, stats = ?run.stats, "pipeline stopped");
        Ok(run.stats)
    }
}

/// State of one run.
struct Run<J: Job> {
    source: KafkaSource,
    processor: Processor<J>,
    sink: ClickHouseSink,
    dead_letters: DeadLetterSink,
    store: CheckpointStore,
    stats: PipelineStats,
    records_in_batch: usize,
    last_checkpoint: Instant,
    /// The checkpoint being written, off the loop; yields its positions.
    saving: Option<JoinHandle<Result<Vec<SourceOffset>, CheckpointError>>>,
}

impl<J: Job> Run<J> {
    async fn read(&mut self, message: &OwnedMessage) -> Result<(), PipelineError> {
        let id = self.source.source_id(message.topic(), message.partition());
        self.stats.records += 1;
        if !self.source.is_new(id, message.offset()) {
            self.stats.replayed_records += 1;
            return Ok(());
        }
        self.records_in_batch += 1;
        let payload = message.payload().unwrap_or_default();
        match self.processor.read(payload, id, message.offset()) {
            Ok(n) => self.stats.events += n as u64,
            Err(e) => {
                self.stats.undecodable_records += 1;
                warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(), error = %e, "dead-lettering an undecodable record");
                let origin = Origin {
                    topic: message.topic(),
                    partition: message.partition(),
                    offset: message.offset(),
                };
                self.dead_letters
                    .record(payload, origin, &e.to_string())
                    .await?;
            }
        }
        self.source.mark_read(id, message.offset());
        Ok(())
    }

    /// Folds decoded events into the window state; writes the raw events
    /// table and dead-letters events past the correction horizon.
    async fn ingest(&mut self) -> Result<(), PipelineError> {
        self.records_in_batch = 0;
        let ingested = self.processor.ingest().await?;
        self.stats.duplicates += ingested.duplicates as u64;
        self.stats.corrections += ingested.corrections as u64;
        self.stats.too_late += ingested.too_late.len() as u64;
        metrics::counter!("livepulse_pipeline_duplicate_events_total")
            .increment(ingested.duplicates as u64);
        metrics::counter!("livepulse_pipeline_corrections_total")
            .increment(ingested.corrections as u64);
        self.sink.insert(tables::EVENTS, &ingested.raw_rows).await?;
        self.dead_letters.too_late(&ingested.too_late).await?;
        Ok(())
    }

    /// Emits the windows the watermark closed and the corrected ones.
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
            if let Some(sessions) = self.processor.job().sessions() {
                self.sink
                    .insert(sessions.table, &emission.session_rows)
                    .await?;
            }
            self.processor.emitted(&emission);
            self.stats.rows_written += emission.rows.len() as u64;
            self.stats.session_rows_written += emission.session_rows.len() as u64;
            metrics::counter!("livepulse_pipeline_rows_written_total", "job" => job)
                .increment(emission.rows.len() as u64);
            metrics::gauge!("livepulse_pipeline_watermark_ms", "job" => job).set(watermark as f64);
        }
        let memory = self.processor.memory();
        metrics::gauge!("livepulse_pipeline_tracked_event_ids", "job" => job)
            .set(memory.event_ids as f64);
        metrics::gauge!("livepulse_pipeline_open_sessions", "job" => job)
            .set(memory.sessions as f64);
        self.stats.late_session_updates = self.processor.late_session_updates();
        Ok(())
    }

    /// Snapshots state and offsets together and writes them to disk on a
    /// blocking thread, so windows keep closing meanwhile; the offsets are
    /// committed by [`Self::checkpoint_written`] once the files are durable.
    async fn checkpoint(&mut self) -> Result<(), PipelineError> {
        // One write at a time: the next id and the commits stay in order.
        self.checkpoint_written().await?;
        self.ingest().await?;
        let id = self.store.next_id()?;
        let positions = self.source.positions();
        let checkpoint = self.processor.checkpoint(id, positions.clone()).await?;
        let store = self.store.clone();
        self.saving = Some(tokio::task::spawn_blocking(move || {
            store.save(&checkpoint).map(|()| positions)
        }));
        self.last_checkpoint = Instant::now();
        debug!(id, memory = ?self.processor.memory(), "checkpoint taken");
        Ok(())
    }

    /// Waits for the checkpoint being written, then commits its offsets (for
    /// monitoring and for a start without the checkpoint directory).
    async fn checkpoint_written(&mut self) -> Result<(), PipelineError> {
        let Some(saving) = self.saving.take() else {
            return Ok(());
        };
        let positions = match saving.await {
            Ok(written) => written?,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        self.stats.checkpoints += 1;
        // A failed commit costs only replay, which the checkpoint's offsets
        // skip; the next checkpoint commits again.
        match self.source.commit(&positions) {
            Ok(0) => {}
            Ok(_) => self.stats.commits += 1,
            Err(e) => warn!(error = %e, "offset commit failed; retrying after the next checkpoint"),
        }
        Ok(())
    }
}
