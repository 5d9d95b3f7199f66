//! The streaming runtime and the jobs that run on it.
//!
//! Data flow of one pipeline instance:
//!
//! ```text
//! Kafka (sources::kafka) -> decode (Arrow) -> WindowState (dedup, lateness,
//!   event-time windows) -> SqlEngine (DataFusion runs the job's SQL over
//!   closed windows) -> sinks::clickhouse -> commit offsets
//! ```
//!
//! A job is its SQL plus a mapping of result rows to a ClickHouse table; see
//! [`jobs::engagement`].

pub mod config;
pub mod jobs;
pub mod runtime;
pub mod sinks;
pub mod sources;

pub use config::PipelineConfig;
pub use runtime::{Pipeline, PipelineError, PipelineStats};
