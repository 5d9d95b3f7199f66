//! The source- and sink-agnostic core of a pipeline: decode records, admit
//! events into windows, and turn closed windows into rows. The Kafka loop
//! ([`super::Pipeline`]) and the replay benchmark drive the same code.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Int64Type, UInt32Type};
use datafusion::arrow::error::ArrowError;
use livepulse_contract::arrow::col;
use livepulse_sql::EventRow;

use super::PipelineError;
use super::decode::{DecodeError, EventDecoder, SOURCE_COLUMN};
use super::engine::SqlEngine;
use super::raw::event_rows;
use super::watermark::Watermarks;
use super::window::{Closing, WindowState};
use crate::jobs::Job;

/// What [`Processor::ingest`] produced: rows for the raw events table, and
/// what it left out of the windows.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Every first sighting of an event, windowed or late.
    pub raw_rows: Vec<EventRow>,
    /// Events dropped as repeats of an event in an open window.
    pub duplicates: usize,
    /// Events whose windows had already closed.
    pub late: usize,
}

/// Rows of the windows a watermark closed. Hand it back to
/// [`Processor::emitted`] once the rows are written.
#[derive(Debug)]
pub struct Emission<R> {
    closing: Vec<Closing>,
    /// The job's rows for every closed window.
    pub rows: Vec<R>,
}

/// Decoding, windowing and aggregation for one job.
pub struct Processor<J: Job> {
    job: J,
    decoder: EventDecoder,
    watermarks: Watermarks,
    windows: WindowState,
    engine: SqlEngine,
}

impl<J: Job> Processor<J> {
    /// A processor for `job` with the given lateness and idle timeout.
    pub fn new(job: J, allowed_lateness_ms: i64, idle_timeout: Duration) -> Self {
        let windows = WindowState::new(job.windows());
        Self {
            job,
            decoder: EventDecoder::default(),
            watermarks: Watermarks::new(allowed_lateness_ms, idle_timeout),
            windows,
            engine: SqlEngine::new(),
        }
    }

    /// The job.
    pub fn job(&self) -> &J {
        &self.job
    }

    /// Decodes one record of partition `source` at `offset`.
    pub fn read(&mut self, value: &[u8], source: u32, offset: i64) -> Result<usize, DecodeError> {
        self.decoder.append(value, source, offset)
    }

    /// Moves what was read into the windows.
    pub fn ingest(&mut self) -> Result<Ingested, ArrowError> {
        if self.decoder.is_empty() {
            return Ok(Ingested::default());
        }
        let batch = self.decoder.finish()?;
        let now = Instant::now();
        if let (Some(sources), Some(ts)) = (
            batch.column_by_name(SOURCE_COLUMN),
            batch.column_by_name(col::TS),
        ) {
            let (sources, ts) = (
                sources.as_primitive::<UInt32Type>(),
                ts.as_primitive::<Int64Type>(),
            );
            for (source, ts) in sources.values().iter().zip(ts.values()) {
                self.watermarks.observe(*source, *ts, now);
            }
        }
        let admitted = self.windows.admit(batch)?;
        let mut raw_rows = event_rows(&admitted.fresh)?;
        raw_rows.extend(event_rows(&admitted.late)?);
        Ok(Ingested {
            raw_rows,
            duplicates: admitted.duplicates,
            late: admitted.late.num_rows(),
        })
    }

    /// Per-partition event-time progress, for assignment and idleness.
    pub fn watermarks(&mut self) -> &mut Watermarks {
        &mut self.watermarks
    }

    /// Runs the job over every window `watermark` closes.
    pub async fn close(
        &mut self,
        watermark: i64,
        emitted_ms: i64,
    ) -> Result<Emission<J::Row>, PipelineError> {
        let closing = self.windows.closing(watermark);
        let mut rows = Vec::new();
        for range in &closing {
            let result = self
                .engine
                .run(self.job.sql(), self.windows.pending(), *range)
                .await?;
            rows.extend(self.job.rows(&result, range.window, emitted_ms)?);
        }
        Ok(Emission { closing, rows })
    }

    /// Records that an emission was written, releasing rows no open window needs.
    pub fn emitted(&mut self, emission: &Emission<J::Row>) -> Result<(), ArrowError> {
        self.windows.mark_emitted(&emission.closing)
    }

    /// Events waiting in open windows.
    pub fn pending_events(&self) -> usize {
        self.windows.pending_rows()
    }

    /// Per partition, the lowest offset an open window still needs.
    pub fn lowest_pending_offsets(&self) -> HashMap<u32, i64> {
        self.windows.lowest_pending_offsets()
    }
}
