//! The ClickHouse sink: inserts rows, retrying with backoff until the server
//! takes them. The runtime commits Kafka offsets only after this returns, and
//! every table is a ReplacingMergeTree, so a retried or replayed insert
//! cannot double-count.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use clickhouse::{Client, RowOwned, RowWrite};
use thiserror::Error;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::runtime::crashpoint;
use crate::sinks::row_binary::{RawTable, RowBinary};

/// The size of the chunks a raw INSERT is sent in.
const RAW_CHUNK_BYTES: usize = 256 * 1024;

/// Why rows were not written.
#[derive(Debug, Error)]
pub enum SinkError {
    /// Shutdown was requested while the server kept failing; nothing was
    /// committed, so the rows are replayed on the next start.
    #[error("shutdown while ClickHouse kept failing ({attempts} attempts, last error: {last})")]
    Cancelled {
        /// Attempts made.
        attempts: u32,
        /// The last server or transport error.
        last: String,
    },
}

/// Inserts into ClickHouse, holding the pipeline back (and so the Kafka
/// consumer) while the server is unavailable.
pub struct ClickHouseSink {
    client: Client,
    shutdown: CancellationToken,
    max_backoff: Duration,
}

impl ClickHouseSink {
    /// A sink on `client`; retries stop when `shutdown` is cancelled.
    pub fn new(client: Client, shutdown: CancellationToken) -> Self {
        Self {
            client,
            shutdown,
            max_backoff: Duration::from_secs(5),
        }
    }

    /// Inserts `rows` into `table` as one INSERT, retrying the whole INSERT
    /// with exponential backoff (100 ms up to 5 s) until it succeeds.
    pub async fn insert<T>(&self, table: &str, rows: &[T]) -> Result<(), SinkError>
    where
        T: RowOwned + RowWrite,
    {
        if rows.is_empty() {
            return Ok(());
        }
        self.retrying(table, || self.try_insert(table, rows)).await
    }

    /// Inserts rows encoded for `table` as one INSERT, retried like
    /// [`ClickHouseSink::insert`].
    pub async fn insert_raw(&self, table: &RawTable, rows: &RowBinary) -> Result<(), SinkError> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = table.insert_sql();
        self.retrying(table.name, || self.try_insert_raw(&sql, rows.bytes()))
            .await
    }

    async fn retrying<F, Fut>(&self, table: &str, mut attempt: F) -> Result<(), SinkError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), clickhouse::error::Error>>,
    {
        let mut backoff = Duration::from_millis(100);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let last = match attempt().await {
                Ok(()) => return Ok(()),
                Err(e) => e.to_string(),
            };
            metrics::counter!("livepulse_pipeline_sink_retries_total", "table" => table.to_owned())
                .increment(1);
            warn!(table, attempts, error = %last, retry_in_ms = backoff.as_millis() as u64, "ClickHouse insert failed");
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(SinkError::Cancelled { attempts, last }),
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    async fn try_insert<T>(&self, table: &str, rows: &[T]) -> Result<(), clickhouse::error::Error>
    where
        T: RowOwned + RowWrite,
    {
        let mut insert = self.client.insert::<T>(table).await?;
        for (i, row) in rows.iter().enumerate() {
            if i == rows.len() / 2 {
                crashpoint::reached("clickhouse_insert");
            }
            insert.write(row).await?;
        }
        insert.end().await
    }

    /// Sends the rows in chunks (copies small enough for the allocator to
    /// reuse its memory); the crash point falls with half of them sent.
    async fn try_insert_raw(
        &self,
        sql: &str,
        bytes: &[u8],
    ) -> Result<(), clickhouse::error::Error> {
        let mut insert = self.client.insert_formatted_with(sql);
        let chunks = bytes.chunks(RAW_CHUNK_BYTES);
        let half = chunks.len() / 2;
        for (i, chunk) in chunks.enumerate() {
            if i == half {
                crashpoint::reached("clickhouse_insert");
            }
            insert.send(Bytes::copy_from_slice(chunk)).await?;
        }
        insert.end().await
    }
}
