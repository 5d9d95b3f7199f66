//! The source- and sink-agnostic core of a pipeline: decode records, fold
//! events into window state, and turn due windows into rows. The Kafka loop
//! ([`super::Pipeline`]) and the replay benchmark drive the same code.

use std::time::{Duration, Instant};

use datafusion::arrow::record_batch::RecordBatch;
use livepulse_contract::record::{Payload, RecordError};

use super::PipelineError;
use super::checkpoint::{Checkpoint, Meta, SourceOffset};
use super::decode::{InputDecoder, input_schema};
use super::engine::IncrementalSql;
use super::session::SessionState;
use super::state::WindowState;
use super::watermark::Watermarks;
use super::window::{SessionWindow, WindowSpec, pane_ms};
use crate::config::PipelineConfig;
use crate::jobs::Job;
use crate::sinks::row_binary::RowBinary;

/// What [`Processor::ingest`] did with the rows read since the last call.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Rows beyond the correction horizon (input schema), for the
    /// dead-letter topic.
    pub too_late: Option<RecordBatch>,
    /// Rows dropped as repeats of a row already counted.
    pub duplicates: usize,
    /// Rows that corrected an already emitted window.
    pub corrections: usize,
}

/// What a processor's state holds, and the bytes each part takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateMemory {
    /// Open and recently closed sessions.
    pub sessions: usize,
    /// Bytes of the session state.
    pub session_bytes: usize,
    /// Event ids kept for de-duplication.
    pub event_ids: usize,
    /// Bytes of the de-duplication ids.
    pub event_id_bytes: usize,
    /// Panes kept.
    pub panes: usize,
    /// Bytes of the pane states.
    pub pane_bytes: usize,
}

/// A job's session window: its SQL and its sessions.
struct Sessions {
    window: SessionWindow,
    sql: IncrementalSql,
    state: SessionState,
}

/// Rows of the windows a watermark closed or a correction changed. Hand it
/// back to [`Processor::emitted`] once the rows are written.
#[derive(Debug)]
pub struct Emission<R, S> {
    watermark: i64,
    /// The job's rows.
    pub rows: Vec<R>,
    /// The job's session rows (closed, corrected and retracted sessions).
    pub session_rows: Vec<S>,
    /// The journal entry of the sessions the rows show; the task journals
    /// it durably before the rows are written.
    pub shown: Vec<u8>,
}

/// Lateness settings of a processor.
#[derive(Debug, Clone, Copy)]
pub struct Lateness {
    /// The watermark trails the newest event time by this much.
    pub allowed_ms: i64,
    /// Emitted windows are corrected by events this late past their close.
    pub correction_horizon_ms: i64,
    /// A silent, caught-up partition stops holding the watermark after this.
    pub idle_timeout: Duration,
}

impl From<&PipelineConfig> for Lateness {
    fn from(config: &PipelineConfig) -> Self {
        Self {
            allowed_ms: config.allowed_lateness_ms,
            correction_horizon_ms: config.correction_horizon_ms,
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
        }
    }
}

/// Decoding, windowing and aggregation for one job.
pub struct Processor<J: Job> {
    job: J,
    windows: Vec<WindowSpec>,
    decoder: InputDecoder,
    watermarks: Watermarks,
    state: WindowState,
    sql: IncrementalSql,
    sessions: Option<Sessions>,
}

impl<J: Job> Processor<J> {
    /// A processor for `job`; plans its SQL.
    pub async fn new(job: J, lateness: Lateness) -> Result<Self, PipelineError> {
        let windows = job
            .windows()
            .iter()
            .map(|w| w.parse())
            .collect::<Result<Vec<WindowSpec>, _>>()?;
        let schema = input_schema(&job.topics())?;
        let sql = IncrementalSql::plan(job.sql(), pane_ms(&windows), schema.clone()).await?;
        let sessions = match job.sessions() {
            Some(query) => {
                let window: SessionWindow = query.window.parse()?;
                // Panes as wide as the gap: a partial group never spans a silence.
                let sql = IncrementalSql::plan(query.sql, window.gap_ms, schema.clone()).await?;
                let state = SessionState::new(&sql, window.gap_ms, lateness.correction_horizon_ms)?;
                Some(Sessions { window, sql, state })
            }
            None => None,
        };
        Ok(Self {
            sessions,
            state: WindowState::new(windows.clone(), lateness.correction_horizon_ms),
            windows,
            job,
            decoder: InputDecoder::new(schema),
            watermarks: Watermarks::new(lateness.allowed_ms, lateness.idle_timeout),
            sql,
        })
    }

    /// The job.
    pub fn job(&self) -> &J {
        &self.job
    }

    /// Decodes one record (of a topic carrying `payload`) of partition
    /// `source` at `offset`.
    pub fn read(
        &mut self,
        payload: Payload,
        value: &[u8],
        source: u32,
        offset: i64,
    ) -> Result<usize, RecordError> {
        let rows = self.decoder.append(payload, value, source, offset)?;
        // Observed on reading, not on folding: the runtime flushes as soon
        // as the watermark closes a window (see `window_due`). Every flush
        // folds what was read before it advances the watermark.
        if let Some(ts) = self.decoder.latest_ts() {
            self.watermarks.observe(source, ts, Instant::now());
        }
        Ok(rows)
    }

    /// Whether advancing the watermark now would close a window the last
    /// emission did not.
    pub fn window_due(&self, now: Instant, now_ms: i64) -> bool {
        let (Some(watermark), Some(end)) =
            (self.watermarks.peek(now, now_ms), self.state.next_end())
        else {
            return false;
        };
        watermark >= end
    }

    /// Folds what was read into the window state, and appends the rows for
    /// the job's raw table to `raw`: every first sighting, and every
    /// too-late row (it was accepted, it only misses its windows).
    pub async fn ingest(&mut self, raw: &mut RowBinary) -> Result<Ingested, PipelineError> {
        if self.decoder.is_empty() {
            return Ok(Ingested::default());
        }
        let batch = self.decoder.finish()?;
        let admitted = self.state.admit(batch, &self.sql).await?;
        if let Some(sessions) = &mut self.sessions
            && admitted.fresh.num_rows() > 0
        {
            let states = sessions.sql.partial(admitted.fresh.clone()).await?;
            sessions.state.fold(&states)?;
        }
        self.job.raw_table().encode(&admitted.fresh, raw)?;
        let too_late = if admitted.too_late.num_rows() > 0 {
            self.job.raw_table().encode(&admitted.too_late, raw)?;
            Some(admitted.too_late)
        } else {
            None
        };
        Ok(Ingested {
            too_late,
            duplicates: admitted.duplicates,
            corrections: admitted.corrections,
        })
    }

    /// Per-partition event-time progress, for assignment and idleness.
    pub fn watermarks(&mut self) -> &mut Watermarks {
        &mut self.watermarks
    }

    /// Rows of every window `watermark` closes, and of corrected windows.
    pub async fn close(
        &mut self,
        watermark: i64,
        emitted_ms: i64,
    ) -> Result<Emission<J::Row, J::SessionRow>, PipelineError> {
        let due = self.state.due(watermark);
        let mut rows = Vec::new();
        for (window, result) in self.state.evaluate(&due, &self.sql).await? {
            rows.extend(self.job.rows(&result, window, emitted_ms)?);
        }
        let (mut session_rows, mut shown) = (Vec::new(), Vec::new());
        if let Some(sessions) = &self.sessions {
            let due = sessions.state.due(watermark)?;
            if due.states.num_rows() > 0 {
                let result = sessions.sql.finish(vec![due.states]).await?;
                session_rows = self.job.session_rows(&result, emitted_ms)?;
            }
            shown = due.shown;
        }
        Ok(Emission {
            watermark,
            rows,
            session_rows,
            shown,
        })
    }

    /// Records that an emission was written.
    pub fn emitted(&mut self, emission: &Emission<J::Row, J::SessionRow>) {
        self.state.emitted_at(emission.watermark);
        if let Some(sessions) = &mut self.sessions {
            sessions.state.emitted_at(emission.watermark);
        }
    }

    /// What the state holds and the bytes it takes.
    pub fn memory(&self) -> StateMemory {
        let sessions = self.sessions.as_ref().map(|s| &s.state);
        StateMemory {
            sessions: sessions.map_or(0, SessionState::sessions),
            session_bytes: sessions.map_or(0, SessionState::heap_bytes),
            event_ids: self.state.tracked_ids(),
            event_id_bytes: self.state.id_bytes(),
            panes: self.state.panes(),
            pane_bytes: self.state.pane_bytes(),
        }
    }

    /// Session state rows dropped as beyond the correction horizon.
    pub fn late_session_updates(&self) -> u64 {
        self.sessions.as_ref().map_or(0, |s| s.state.late_dropped())
    }

    /// The window declarations, as checkpoints record them.
    pub fn window_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.windows.iter().map(ToString::to_string).collect();
        names.extend(self.sessions.as_ref().map(|s| s.window.to_string()));
        names
    }

    /// A checkpoint of the state; call right after [`Self::ingest`], so
    /// nothing read is left out, with where each source resumes.
    pub async fn checkpoint(
        &mut self,
        id: u64,
        partition: i32,
        offsets: Vec<SourceOffset>,
    ) -> Result<Checkpoint, PipelineError> {
        Ok(Checkpoint {
            meta: Meta {
                id,
                partition,
                windows: self.window_names(),
                progress: self.state.progress().clone(),
                watermark: self.watermarks.current(),
                offsets,
            },
            pane_schema: self.sql.state_schema(),
            panes: self.state.pane_states(&self.sql).await?,
            ids: self.state.id_batch()?,
            sessions: self
                .sessions
                .as_ref()
                .map(|s| s.state.checkpoint_batch())
                .transpose()?,
        })
    }

    /// Restores a checkpoint taken by [`Self::checkpoint`].
    pub async fn restore(&mut self, checkpoint: Checkpoint) -> Result<(), PipelineError> {
        self.watermarks.restore(checkpoint.meta.watermark);
        if let (Some(sessions), Some(batch)) = (&mut self.sessions, &checkpoint.sessions) {
            sessions
                .state
                .restore(batch, checkpoint.meta.progress.emitted_until)?;
        }
        self.state
            .restore(
                checkpoint.meta.progress,
                checkpoint.panes,
                &checkpoint.ids,
                &self.sql,
            )
            .await?;
        Ok(())
    }

    /// Folds in a journal entry of an [`Emission`]'s `shown` written after the
    /// restored checkpoint, so sessions shown since are retracted if the
    /// replay gives them another start.
    pub fn restore_shown(&mut self, entry: &[u8]) -> Result<(), PipelineError> {
        if let Some(sessions) = &mut self.sessions {
            sessions.state.restore_shown(entry)?;
        }
        Ok(())
    }
}
