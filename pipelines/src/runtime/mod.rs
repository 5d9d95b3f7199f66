//! The streaming runtime: one loop per pipeline instance that reads Kafka,
//! decodes to Arrow, folds rows into window state with DataFusion's partial
//! aggregation, emits due windows to ClickHouse, and checkpoints state with
//! its source offsets before committing them.
//!
//! State is kept per task (one partition number of every topic the job
//! reads; see [`task`]), so the instances of a consumer group split a job
//! and hand tasks over on a rebalance through their shared checkpoint
//! directory.

pub mod checkpoint;
pub mod columns;
pub mod crashpoint;
pub mod decode;
pub mod engine;
pub mod processor;
pub mod session;
pub mod state;
mod task;
pub mod watermark;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use livepulse_connectors::clickhouse::ClickHouseConfig;
use livepulse_connectors::kafka::KafkaConfig;
use livepulse_contract::now_ms;
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use self::checkpoint::{CheckpointError, CheckpointRoot, SourceOffset};
use self::decode::InputError;
use self::processor::Lateness;
use self::task::Task;
use self::window::WindowSpecError;
use crate::config::{Assignment, PipelineConfig, PipelineConfigError};
use crate::jobs::Job;
use crate::sinks::clickhouse::{ClickHouseSink, SinkError};
use crate::sinks::dead_letter::{DeadLetterSink, Origin};
use crate::sinks::row_binary::RowBinary;
use crate::sources::kafka::{Change, KafkaSource, SourceError};

/// The hash map of per-event state (event ids, session keys): foldhash
/// instead of SipHash, which was most of the time spent in these maps. Its
/// seed is random per process, so crafted keys cannot be aimed at one bucket
/// chain from outside.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Why a pipeline stopped before being asked to.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] PipelineConfigError),
    /// A job declares a window the runtime cannot compute.
    #[error(transparent)]
    Window(#[from] WindowSpecError),
    /// A job's topics cannot be read as one table.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The job's topics cannot be read (missing, not co-partitioned).
    #[error(transparent)]
    Source(#[from] SourceError),
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
    /// Tasks (partition numbers) taken on: at start, or from another
    /// instance on a rebalance.
    pub tasks_started: u64,
    /// Tasks handed to another instance on a rebalance.
    pub tasks_handed_over: u64,
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

    /// Runs until `shutdown` is cancelled, then checkpoints every task once
    /// more before leaving the group. Tasks start from their newest
    /// checkpoints in the checkpoint directory.
    pub async fn run(self, shutdown: CancellationToken) -> Result<PipelineStats, PipelineError> {
        let config = self.config;
        config.validate()?;
        let name = self.job.name();
        let topics = self.job.topics();
        let group = config.group_of(name);
        let owner = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let root = CheckpointRoot::open(config.checkpoint_dir.join(&group), &owner)?;
        let source = KafkaSource::new(&self.kafka, &group, &topics)?;
        let mut run = Run {
            job: self.job.clone(),
            lateness: Lateness::from(&config),
            sink: ClickHouseSink::new(self.clickhouse.client(), shutdown.clone()),
            dead_letters: DeadLetterSink::new(&self.kafka, name, shutdown.clone())?,
            stats: PipelineStats::default(),
            source,
            root,
            tasks: BTreeMap::new(),
            raw: RowBinary::default(),
            too_late: Vec::new(),
            events_in_batch: 0,
            last_checkpoint: Instant::now(),
        };
        match config.assignment {
            Assignment::Group => run.source.subscribe()?,
            Assignment::All => {
                let mut resume = Vec::new();
                for partition in 0..run.source.partition_count() {
                    resume.extend(run.start_task(partition).await?);
                }
                run.source.assign_all(&resume)?;
            }
        }
        info!(job = name, %group, topics = ?topics.iter().map(|t| t.name).collect::<Vec<_>>(), checkpoints = %run.root.dir().display(), "pipeline started");
        let mut tick = tokio::time::interval(Duration::from_millis(config.flush_interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let checkpoint_every = Duration::from_millis(config.checkpoint_interval_ms);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {
                    run.tick(checkpoint_every).await?;
                    // A full interval of reading follows every flush, however
                    // long the flush took, so flushing cannot starve reading.
                    tick.reset();
                }
                message = run.source.recv() => match message {
                    Ok(message) => {
                        run.read(&message).await?;
                        // A closing window is emitted now rather than at the
                        // next tick: up to a flush interval less latency.
                        if run.window_due() {
                            run.tick(checkpoint_every).await?;
                            tick.reset();
                        } else if run.events_in_batch >= config.max_batch_events {
                            run.ingest().await?;
                        }
                    }
                    Err(e) => warn!(error = %e, "kafka consumer error"),
                },
            }
        }
        // What was read is kept: the next start (or the next owner of a
        // task) resumes here, not at the previous checkpoint. Sinks may be
        // unreachable by now; then it replays from the previous one instead.
        let last = match run.checkpoint().await {
            Ok(()) => run.checkpoints_written().await,
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
    job: J,
    lateness: Lateness,
    source: KafkaSource,
    root: CheckpointRoot,
    /// By partition number.
    tasks: BTreeMap<i32, Task<J>>,
    sink: ClickHouseSink,
    dead_letters: DeadLetterSink,
    stats: PipelineStats,
    /// The raw table's rows of a batch; kept to reuse its memory.
    raw: RowBinary,
    /// Rows of a batch past the correction horizon, for the dead letters.
    too_late: Vec<RecordBatch>,
    events_in_batch: usize,
    last_checkpoint: Instant,
}

impl<J: Job> Run<J> {
    /// A flush, then whatever checkpoint work is due.
    async fn tick(&mut self, checkpoint_every: Duration) -> Result<(), PipelineError> {
        self.flush().await?;
        if self.tasks.values().any(Task::save_finished) {
            self.checkpoints_written().await?;
        }
        if self.last_checkpoint.elapsed() >= checkpoint_every {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Whether a task's watermark would close a window if advanced now.
    fn window_due(&self) -> bool {
        let (now, now_ms) = (Instant::now(), now_ms());
        self.tasks
            .values()
            .any(|t| !t.revoked && t.processor.window_due(now, now_ms))
    }

    /// Takes on partition number `partition` from its newest checkpoint;
    /// returns the offsets its state resumes at.
    async fn start_task(&mut self, partition: i32) -> Result<Vec<SourceOffset>, PipelineError> {
        let store = self.root.task(partition)?;
        let (task, resume) = Task::restore(self.job.clone(), self.lateness, store).await?;
        info!(partition, checkpoint = ?task.latest(), "task started");
        self.source.resume_from(&resume);
        self.tasks.insert(partition, task);
        self.stats.tasks_started += 1;
        Ok(resume)
    }

    /// Acts on the rebalances the consumer announced: a revoked task stops
    /// emitting and checkpointing; on the next assignment, tasks no longer
    /// this member's are dropped (their new owner resumes from their
    /// checkpoint), tasks kept are resumed from memory unless another
    /// member checkpointed them meanwhile, and new tasks are restored.
    async fn rebalanced(&mut self) -> Result<(), PipelineError> {
        for change in self.source.take_changes() {
            match change {
                Change::Revoked(partitions) => {
                    for p in &partitions {
                        if let Some(task) = self.tasks.get_mut(p) {
                            task.revoked = true;
                        }
                    }
                    info!(?partitions, "partitions revoked");
                }
                Change::Assigned(partitions) => {
                    info!(?partitions, "partitions assigned");
                    self.assigned(&partitions).await?;
                }
            }
        }
        Ok(())
    }

    async fn assigned(&mut self, partitions: &[i32]) -> Result<(), PipelineError> {
        let gone: Vec<i32> = self
            .tasks
            .keys()
            .filter(|p| !partitions.contains(p))
            .copied()
            .collect();
        for p in gone {
            if let Some(mut task) = self.tasks.remove(&p) {
                // Its offsets are the new owner's to commit now.
                task.written().await?;
            }
            self.source.forget(p);
            self.stats.tasks_handed_over += 1;
            info!(partition = p, "task handed over");
        }
        for &p in partitions {
            let Some(task) = self.tasks.get_mut(&p) else {
                self.start_task(p).await?;
                continue;
            };
            let written = task.written().await?;
            let superseded = task.superseded()?;
            if !superseded {
                task.revoked = false;
            }
            if let Some(positions) = written {
                self.stats.checkpoints += 1;
                self.commit(&positions);
            }
            if superseded {
                self.tasks.remove(&p);
                self.source.forget(p);
                self.start_task(p).await?;
            } else {
                // The group restarts it at the committed offsets: skip what
                // the state already holds.
                let positions = self.source.positions(p);
                self.source.resume_from(&positions);
            }
        }
        Ok(())
    }

    async fn read(&mut self, message: &OwnedMessage) -> Result<(), PipelineError> {
        self.rebalanced().await?;
        let (topic, partition) = (message.topic(), message.partition());
        let Some(payload) = self.source.payload(topic) else {
            warn!(topic, "a record of a topic the job does not read");
            return Ok(());
        };
        if !self.tasks.contains_key(&partition) {
            self.start_task(partition).await?;
        }
        let id = self.source.source_id(topic, partition);
        self.stats.records += 1;
        if !self.source.is_new(id, message.offset()) {
            self.stats.replayed_records += 1;
            return Ok(());
        }
        let value = message.payload().unwrap_or_default();
        let Some(task) = self.tasks.get_mut(&partition) else {
            return Ok(());
        };
        match task.processor.read(payload, value, id, message.offset()) {
            Ok(n) => {
                self.stats.events += n as u64;
                self.events_in_batch += n;
            }
            Err(e) => {
                self.stats.undecodable_records += 1;
                warn!(topic, partition, offset = message.offset(), error = %e, "dead-lettering an undecodable record");
                let origin = Origin {
                    topic,
                    partition,
                    offset: message.offset(),
                };
                self.dead_letters
                    .record(value, origin, &e.to_string())
                    .await?;
            }
        }
        self.source.mark_read(id, message.offset());
        Ok(())
    }

    /// Folds decoded rows into every task's window state and writes them
    /// to the raw table (see [`Self::fold`] and [`Self::write_input`]).
    async fn ingest(&mut self) -> Result<(), PipelineError> {
        self.fold().await?;
        self.write_input().await
    }

    /// Folds decoded rows into every task's window state, keeping the raw
    /// table's rows and those past the correction horizon for
    /// [`Self::write_input`].
    async fn fold(&mut self) -> Result<(), PipelineError> {
        self.events_in_batch = 0;
        for task in self.tasks.values_mut() {
            let ingested = task.processor.ingest(&mut self.raw).await?;
            self.stats.duplicates += ingested.duplicates as u64;
            self.stats.corrections += ingested.corrections as u64;
            metrics::counter!("livepulse_pipeline_duplicate_events_total")
                .increment(ingested.duplicates as u64);
            metrics::counter!("livepulse_pipeline_corrections_total")
                .increment(ingested.corrections as u64);
            if let Some(rows) = ingested.too_late {
                self.stats.too_late += rows.num_rows() as u64;
                self.too_late.push(rows);
            }
        }
        Ok(())
    }

    /// Writes the folded rows to the raw table and dead-letters those past
    /// the correction horizon.
    async fn write_input(&mut self) -> Result<(), PipelineError> {
        self.sink
            .insert_raw(self.job.raw_table(), &self.raw)
            .await?;
        self.raw.clear();
        self.dead_letters.too_late(&self.too_late).await?;
        self.too_late.clear();
        Ok(())
    }

    /// Emits the windows each task's watermark closed and the corrected ones.
    async fn flush(&mut self) -> Result<(), PipelineError> {
        self.rebalanced().await?;
        self.fold().await?;
        let now = Instant::now();
        match self.source.assigned() {
            Ok(ids) => {
                for id in ids {
                    let Some(p) = self.source.topic_partition(id).map(|tp| tp.partition) else {
                        continue;
                    };
                    if !self.tasks.contains_key(&p) {
                        self.start_task(p).await?;
                    }
                    if let Some(task) = self.tasks.get_mut(&p) {
                        task.processor.watermarks().assign(id, now);
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot read the partition assignment; retrying next flush")
            }
        }
        let silent: Vec<u32> = self
            .tasks
            .values_mut()
            .flat_map(|t| t.processor.watermarks().silent(now))
            .collect();
        for (id, caught_up) in self.source.caught_up(&silent).await {
            let Some(p) = self.source.topic_partition(id).map(|tp| tp.partition) else {
                continue;
            };
            match (caught_up, self.tasks.get_mut(&p)) {
                (Ok(true), Some(task)) => task.processor.watermarks().set_caught_up(id),
                (Ok(_), _) => {}
                (Err(e), _) => debug!(error = %e, "could not fetch watermarks"),
            }
        }
        let job = self.job.name();
        let (mut rows, mut session_rows, mut emitted) = (Vec::new(), Vec::new(), Vec::new());
        let mut journal = Vec::new();
        for (p, task) in self.tasks.iter_mut().filter(|(_, t)| !t.revoked) {
            let Some(watermark) = task.processor.watermarks().advance(now, now_ms()) else {
                continue;
            };
            let mut emission = task.processor.close(watermark, now_ms()).await?;
            rows.append(&mut emission.rows);
            session_rows.append(&mut emission.session_rows);
            if !emission.shown.is_empty() {
                journal.push(task.journal_shown(std::mem::take(&mut emission.shown)));
            }
            emitted.push((*p, emission));
            metrics::gauge!("livepulse_pipeline_watermark_ms", "job" => job, "partition" => p.to_string())
                .set(watermark as f64);
        }
        // Durable before the rows: a restart retracts the sessions they show
        // if the replay moves them (see [`session`]).
        for write in journal {
            task::joined(write).await?;
        }
        self.sink.insert(self.job.table(), &rows).await?;
        if let Some(sessions) = self.job.sessions() {
            self.sink.insert(sessions.table, &session_rows).await?;
        }
        // After the window rows, which are what dashboards wait for.
        self.write_input().await?;
        for (p, emission) in &emitted {
            if let Some(task) = self.tasks.get_mut(p) {
                task.processor.emitted(emission);
            }
        }
        self.stats.rows_written += rows.len() as u64;
        self.stats.session_rows_written += session_rows.len() as u64;
        metrics::counter!("livepulse_pipeline_rows_written_total", "job" => job)
            .increment(rows.len() as u64);
        let (mut ids, mut sessions, mut late) = (0, 0, 0);
        for task in self.tasks.values() {
            let memory = task.processor.memory();
            ids += memory.event_ids;
            sessions += memory.sessions;
            late += task.processor.late_session_updates();
        }
        metrics::gauge!("livepulse_pipeline_tracked_event_ids", "job" => job).set(ids as f64);
        metrics::gauge!("livepulse_pipeline_open_sessions", "job" => job).set(sessions as f64);
        metrics::gauge!("livepulse_pipeline_tasks", "job" => job).set(self.tasks.len() as f64);
        self.stats.late_session_updates = late;
        Ok(())
    }

    /// Snapshots every task's state with its offsets and writes them to
    /// disk off the loop; [`Self::checkpoints_written`] commits the offsets
    /// once the files are durable.
    async fn checkpoint(&mut self) -> Result<(), PipelineError> {
        // One write per task at a time: ids and commits stay in order.
        self.checkpoints_written().await?;
        self.ingest().await?;
        for (p, task) in self.tasks.iter_mut().filter(|(_, t)| !t.revoked) {
            task.start_checkpoint(self.source.positions(*p)).await?;
        }
        self.last_checkpoint = Instant::now();
        debug!(tasks = self.tasks.len(), "checkpoints taken");
        Ok(())
    }

    /// Waits for the checkpoints being written, then commits their offsets
    /// (for monitoring, and for a start without the checkpoint directory).
    async fn checkpoints_written(&mut self) -> Result<(), PipelineError> {
        let mut positions = Vec::new();
        for task in self.tasks.values_mut() {
            if let Some(saved) = task.written().await? {
                self.stats.checkpoints += 1;
                positions.extend(saved);
            }
        }
        self.commit(&positions);
        Ok(())
    }

    /// Commits offsets of durable checkpoints. A failed commit costs only
    /// replay, which the checkpoints' offsets skip; the next checkpoint
    /// commits again.
    fn commit(&mut self, positions: &[SourceOffset]) {
        match self.source.commit(positions) {
            Ok(0) => {}
            Ok(_) => self.stats.commits += 1,
            Err(e) => warn!(error = %e, "offset commit failed; retrying after the next checkpoint"),
        }
    }
}
