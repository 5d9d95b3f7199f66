//! Job definitions: what to compute (SQL over windowed events) and where the
//! result rows go.

pub mod engagement;

use clickhouse::{RowOwned, RowWrite};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use crate::runtime::window::WindowSpec;

/// A windowed job. The runtime feeds it the events of its topics, closes its
/// windows by watermark, runs [`Job::sql`] over each closing range and writes
/// [`Job::rows`] to [`Job::table`].
pub trait Job: Send + Sync + 'static {
    /// One output row, matching [`Job::table`]'s columns.
    type Row: RowOwned + RowWrite + serde::Serialize + Send + Sync;

    /// Short name, used for metrics and logs.
    fn name(&self) -> &'static str;
    /// Topics the job reads.
    fn topics(&self) -> Vec<&'static str>;
    /// Window kinds in Arroyo's dialect (`tumble(interval '10 seconds')`,
    /// `hop(interval '10 seconds', interval '1 minute')`), each computed by
    /// the same SQL.
    fn windows(&self) -> &'static [&'static str];
    /// One `SELECT` over `window_events` (the job's events with a
    /// `window_start` column in epoch ms), grouped by `window_start`. It is
    /// run incrementally: aggregates are updated per batch and merged per
    /// window, so it must be a single `GROUP BY` aggregate, with any
    /// arithmetic on the aggregates above it.
    fn sql(&self) -> &str;
    /// The ClickHouse table the rows land in.
    fn table(&self) -> &'static str;
    /// Converts the SQL result for one window kind into rows.
    fn rows(
        &self,
        result: &[RecordBatch],
        window: WindowSpec,
        emitted_ms: i64,
    ) -> Result<Vec<Self::Row>, ArrowError>;
}
