//! Configuration of one pipeline instance.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Knobs of the streaming runtime, shared by every job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Kafka consumer group; instances in one group split the partitions.
    pub group_id: String,
    /// How far behind the newest event time a window stays open for
    /// out-of-order events, ms. The watermark is (min over partitions of the
    /// max event time seen) minus this.
    pub allowed_lateness_ms: i64,
    /// A partition that is caught up and silent this long stops holding the
    /// watermark back, ms. When every partition is idle the watermark follows
    /// the wall clock (minus the lateness), so quiet streams still close.
    pub idle_timeout_ms: u64,
    /// Most Kafka records decoded into one Arrow batch.
    pub max_batch_records: usize,
    /// How often windows are closed and offsets committed, ms.
    pub flush_interval_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            group_id: "livepulse-engagement".to_owned(),
            allowed_lateness_ms: 5_000,
            idle_timeout_ms: 3_000,
            max_batch_records: 512,
            flush_interval_ms: 250,
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
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<(), PipelineConfigError> {
        let err = |field, problem| Err(PipelineConfigError { field, problem });
        if self.group_id.trim().is_empty() {
            return err("group_id", "must not be empty");
        }
        if self.allowed_lateness_ms < 0 {
            return err("allowed_lateness_ms", "must not be negative");
        }
        if self.max_batch_records == 0 {
            return err("max_batch_records", "must be at least 1");
        }
        if self.flush_interval_ms == 0 {
            return err("flush_interval_ms", "must be at least 1");
        }
        Ok(())
    }
}
