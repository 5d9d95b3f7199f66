//! Runs a job's SQL over the rows of closing windows, with DataFusion.

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::decode::decoded_schema;
use super::window::Closing;

/// Name under which a job's SQL sees the rows of the closing windows, with a
/// `window_start` (epoch ms) column added.
pub const WINDOW_EVENTS: &str = "window_events";
const PENDING: &str = "pending";

/// A DataFusion session with livepulse's UDFs registered.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use livepulse_pipelines::runtime::engine::SqlEngine;
/// use livepulse_pipelines::runtime::window::{Closing, Tumbling};
///
/// let engine = SqlEngine::new();
/// let closing = Closing { window: Tumbling::seconds(10), from: None, until: 10_000 };
/// let out = engine
///     .run("SELECT window_start, count(*) AS n FROM window_events GROUP BY window_start", &[], closing)
///     .await
///     .unwrap();
/// assert!(out.iter().all(|b| b.num_rows() == 0));
/// # }
/// ```
pub struct SqlEngine {
    ctx: SessionContext,
}

impl Default for SqlEngine {
    fn default() -> Self {
        Self::new()
    }
}

impl SqlEngine {
    /// A session with the UDFs of `livepulse-udfs` registered. It plans for
    /// one thread: a pipeline instance uses one core, and scales out by
    /// Kafka partitions across instances instead.
    pub fn new() -> Self {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
        livepulse_udfs::datafusion::register_all(&ctx);
        Self { ctx }
    }

    /// Runs `job_sql` (one `SELECT` reading [`WINDOW_EVENTS`]) over the rows
    /// of `pending` whose `ts` falls in the closing range.
    pub async fn run(
        &self,
        job_sql: &str,
        pending: &[RecordBatch],
        closing: Closing,
    ) -> Result<Vec<RecordBatch>, DataFusionError> {
        let table = MemTable::try_new(decoded_schema(), vec![pending.to_vec()])?;
        self.ctx.deregister_table(PENDING)?;
        self.ctx.register_table(PENDING, Arc::new(table))?;
        let width = closing.window.width_ms;
        let from = closing
            .from
            .map_or_else(String::new, |f| format!("ts >= {f} AND "));
        let until = closing.until;
        let sql = format!(
            "WITH {WINDOW_EVENTS} AS (\
               SELECT *, ts - (ts % {width}) AS window_start FROM {PENDING} WHERE {from}ts < {until}\
             ) {job_sql}"
        );
        let frame = self.ctx.sql(&sql).await?;
        frame.collect().await
    }
}
