//! Configuration of one pipeline instance.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Knobs of the streaming runtime, shared by every job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Prefix of the Kafka consumer groups: a job's instances form the
    /// group `<group_prefix>-<job>` and split its partitions.
    pub group_prefix: String,
    /// How far behind the newest event time a window stays open for
    /// out-of-order events, ms. The watermark is (min over partitions of the
    /// max event time seen) minus this.
    pub allowed_lateness_ms: i64,
    /// A partition that is caught up and silent this long stops holding the
    /// watermark back, ms. When every partition is idle the watermark follows
    /// the wall clock (minus the lateness), so quiet streams still close.
    pub idle_timeout_ms: u64,
    /// Events decoded into one Arrow batch before it is folded into the
    /// windows (and its raw rows written); a record holds many events.
    pub max_batch_events: usize,
    /// How often windows are closed, ms.
    pub flush_interval_ms: u64,
    /// How long after its close a window is still corrected by late events,
    /// ms; later events go to the dead-letter topic.
    pub correction_horizon_ms: i64,
    /// Checkpoints go to `<checkpoint_dir>/<group_prefix>-<job>`; instances
    /// of one job share it (a shared volume across machines) to hand tasks
    /// over.
    pub checkpoint_dir: PathBuf,
    /// How often state and offsets are checkpointed (and offsets then
    /// committed), ms.
    pub checkpoint_interval_ms: u64,
    /// How partitions are shared between instances.
    pub assignment: Assignment,
}

/// How a pipeline instance gets its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// Kafka's consumer-group protocol splits partitions between instances.
    #[default]
    Group,
    /// This instance reads every partition (one instance per job), resuming
    /// from its checkpoint; needs no group coordination from the broker.
    All,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            group_prefix: "livepulse".to_owned(),
            allowed_lateness_ms: 250,
            idle_timeout_ms: 3_000,
            max_batch_events: 65_536,
            flush_interval_ms: 250,
            correction_horizon_ms: 60_000,
            checkpoint_dir: PathBuf::from("checkpoints"),
            checkpoint_interval_ms: 5_000,
            assignment: Assignment::default(),
        }
    }
}

/// A pipeline setting that cannot work.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("invalid pipeline config: `{field}` {problem}")]
pub struct PipelineConfigError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

impl PipelineConfig {
    /// The consumer group of `job`'s instances.
    ///
    /// ```
    /// assert_eq!(livepulse_pipelines::PipelineConfig::default().group_of("qoe"), "livepulse-qoe");
    /// ```
    pub fn group_of(&self, job: &str) -> String {
        format!("{}-{job}", self.group_prefix)
    }

    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), PipelineConfigError> {
        let err = |field, problem| Err(PipelineConfigError { field, problem });
        if self.group_prefix.trim().is_empty() {
            return err("group_prefix", "must not be empty");
        }
        if self.allowed_lateness_ms < 0 {
            return err("allowed_lateness_ms", "must not be negative");
        }
        if self.max_batch_events == 0 {
            return err("max_batch_events", "must be at least 1");
        }
        if self.flush_interval_ms == 0 {
            return err("flush_interval_ms", "must be at least 1");
        }
        if self.correction_horizon_ms < 0 {
            return err("correction_horizon_ms", "must not be negative");
        }
        if self.checkpoint_interval_ms == 0 {
            return err("checkpoint_interval_ms", "must be at least 1");
        }
        if self.checkpoint_dir.as_os_str().is_empty() {
            return err("checkpoint_dir", "must not be empty");
        }
        Ok(())
    }
}
