//! Job definitions: what to compute (SQL over windowed events) and where the
//! result rows go.

pub mod engagement;
pub mod qoe;

use clickhouse::{RowOwned, RowWrite};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use livepulse_contract::topics::Topic;

use crate::runtime::window::WindowSpec;
use crate::sinks::row_binary::RawTable;

/// A windowed job. The runtime feeds it the rows of its topics, closes its
/// windows by watermark, runs [`Job::sql`] over each closing range and writes
/// [`Job::rows`] to [`Job::table`].
pub trait Job: Clone + Send + Sync + 'static {
    /// One output row, matching [`Job::table`]'s columns.
    type Row: RowOwned + RowWrite + serde::Serialize + Send + Sync;

    /// Short name, used for metrics and logs.
    fn name(&self) -> &'static str;
    /// Topics the job reads; they must be co-partitioned (see
    /// [`livepulse_contract::topics`]). The job's SQL sees the union of
    /// their schemas ([`input_schema`](crate::runtime::decode::input_schema)).
    fn topics(&self) -> Vec<Topic>;
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

    /// One row of the session query, matching [`SessionQuery::table`]'s columns.
    type SessionRow: RowOwned + RowWrite + serde::Serialize + Send + Sync;
    /// The job's session window, if it has one.
    fn sessions(&self) -> Option<SessionQuery>;
    /// Converts the session query's result into rows. A result row whose
    /// counts are all 0 retracts the session starting at its `window_start`.
    fn session_rows(
        &self,
        result: &[RecordBatch],
        emitted_ms: i64,
    ) -> Result<Vec<Self::SessionRow>, ArrowError>;

    /// The table the job keeps its input rows in (first sightings, and
    /// rows too late for their windows), each once.
    fn raw_table(&self) -> &'static RawTable;
}

/// A session window of a job: per key, runs of events without a silence of
/// the gap, aggregated by their own SQL.
#[derive(Debug, Clone, Copy)]
pub struct SessionQuery {
    /// `session(interval '30 seconds')`.
    pub window: &'static str,
    /// One `SELECT` over `window_events`, grouped by `window_start` (the
    /// session's first event) and the session key (string columns), using
    /// only `count`, `sum`, `min` and `max`, and computing `min(ts)` and
    /// `max(ts)`.
    pub sql: &'static str,
    /// The ClickHouse table the rows land in.
    pub table: &'static str,
}

/// ClickHouse `DateTime` (epoch seconds, floored) from epoch ms.
pub(crate) fn epoch_seconds(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1_000)).unwrap_or(0)
}
