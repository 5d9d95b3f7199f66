//! Event-time tumbling windows over buffered Arrow batches.
//!
//! Events wait in `pending` until the widest window containing them has
//! closed. A window closes when the watermark reaches its end; its rows are
//! then aggregated by the job's SQL. An event whose narrowest window already
//! closed is late and left out of every window (it still lands in the raw
//! events table).

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Int64Type, UInt32Type};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use livepulse_contract::arrow::col;
use serde::{Deserialize, Serialize};

use super::decode::{OFFSET_COLUMN, SOURCE_COLUMN};

/// A tumbling event-time window: `[k * width, (k + 1) * width)` in epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tumbling {
    /// Window width, ms.
    pub width_ms: i64,
}

impl Tumbling {
    /// A window of `secs` seconds.
    pub const fn seconds(secs: i64) -> Self {
        Self {
            width_ms: secs * 1_000,
        }
    }

    /// Start of the window containing `ts`.
    pub fn start_of(self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.width_ms)
    }
}

/// Rows whose windows just closed: `ts` in `[from, until)`, for `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing {
    /// The window kind.
    pub window: Tumbling,
    /// Lowest event time included; `None` on the first close after start.
    pub from: Option<i64>,
    /// Event times at or after this stay open.
    pub until: i64,
}

/// What [`WindowState::admit`] did with a batch.
#[derive(Debug)]
pub struct Admitted {
    /// Rows that entered the windows (first sighting, not late).
    pub fresh: RecordBatch,
    /// Rows whose windows had already closed.
    pub late: RecordBatch,
    /// Rows dropped as repeats of a pending `event_id`.
    pub duplicates: usize,
}

/// Buffered events and how far each window kind has been emitted.
#[derive(Debug)]
pub struct WindowState {
    windows: Vec<Tumbling>,
    pending: Vec<RecordBatch>,
    /// Ids of the buffered events, with their event time (to release them
    /// together with their rows).
    pending_ids: HashMap<u128, i64>,
    /// Per window kind: event times below this have been emitted.
    emitted_until: Vec<Option<i64>>,
}

impl WindowState {
    /// State for the given window kinds.
    pub fn new(mut windows: Vec<Tumbling>) -> Self {
        windows.sort();
        windows.dedup();
        let emitted_until = vec![None; windows.len()];
        Self {
            windows,
            pending: Vec::new(),
            pending_ids: HashMap::new(),
            emitted_until,
        }
    }

    /// Event times below this are late: the narrowest window holding them closed.
    fn late_before(&self) -> Option<i64> {
        self.emitted_until.iter().flatten().max().copied()
    }

    /// Splits a decoded batch into fresh, late and duplicate rows, and buffers
    /// the fresh ones.
    pub fn admit(&mut self, batch: RecordBatch) -> Result<Admitted, ArrowError> {
        let ids = batch
            .column_by_name(col::EVENT_ID)
            .map(|c| c.as_string::<i32>().clone());
        let ts = batch
            .column_by_name(col::TS)
            .map(|c| c.as_primitive::<Int64Type>().clone());
        let (Some(ids), Some(ts)) = (ids, ts) else {
            return Err(ArrowError::SchemaError("batch lacks event_id or ts".into()));
        };
        let late_before = self.late_before();
        let mut fresh = Vec::with_capacity(batch.num_rows());
        let mut late = Vec::with_capacity(batch.num_rows());
        let mut duplicates = 0;
        for row in 0..batch.num_rows() {
            let is_late = late_before.is_some_and(|b| ts.value(row) < b);
            // The collector only accepts UUIDs; a producer that bypasses it
            // still gets a stable key from the id's text.
            let id = uuid::Uuid::try_parse(ids.value(row))
                .map_or_else(|_| hash_id(ids.value(row)), |u| u.as_u128());
            let first = !is_late
                && match self.pending_ids.entry(id) {
                    Entry::Vacant(slot) => {
                        slot.insert(ts.value(row));
                        true
                    }
                    Entry::Occupied(_) => false,
                };
            duplicates += usize::from(!is_late && !first);
            fresh.push(first);
            late.push(is_late);
        }
        let fresh = filter_record_batch(&batch, &BooleanArray::from(fresh))?;
        let late = filter_record_batch(&batch, &BooleanArray::from(late))?;
        if fresh.num_rows() > 0 {
            self.pending.push(fresh.clone());
        }
        Ok(Admitted {
            fresh,
            late,
            duplicates,
        })
    }

    /// Ranges of event time whose windows close at `watermark`, one per window
    /// kind that advanced. Call [`Self::mark_emitted`] once they are written.
    pub fn closing(&self, watermark: i64) -> Vec<Closing> {
        self.windows
            .iter()
            .zip(&self.emitted_until)
            .filter_map(|(w, from)| {
                // Windows ending at or before the watermark are complete.
                let until = w.start_of(watermark);
                (from.is_none_or(|f| until > f)).then_some(Closing {
                    window: *w,
                    from: *from,
                    until,
                })
            })
            .collect()
    }

    /// Records that `closing` was written, and drops rows no open window needs.
    pub fn mark_emitted(&mut self, closing: &[Closing]) -> Result<(), ArrowError> {
        // Nothing closed, so nothing can be released.
        if closing.is_empty() {
            return Ok(());
        }
        for c in closing {
            if let Some(i) = self.windows.iter().position(|w| *w == c.window) {
                self.emitted_until[i] = Some(c.until);
            }
        }
        let Some(keep_from) = self
            .emitted_until
            .iter()
            .copied()
            .collect::<Option<Vec<i64>>>()
            .and_then(|v| v.into_iter().min())
        else {
            return Ok(());
        };
        self.pending_ids.retain(|_, ts| *ts >= keep_from);
        let mut kept = Vec::with_capacity(self.pending.len());
        for batch in self.pending.drain(..) {
            let Some(ts) = batch
                .column_by_name(col::TS)
                .map(|c| c.as_primitive::<Int64Type>().clone())
            else {
                continue;
            };
            let keep: BooleanArray = ts
                .iter()
                .map(|t| Some(t.is_some_and(|t| t >= keep_from)))
                .collect();
            if keep.true_count() == batch.num_rows() {
                kept.push(batch);
            } else if keep.true_count() > 0 {
                kept.push(filter_record_batch(&batch, &keep)?);
            }
        }
        self.pending = kept;
        Ok(())
    }

    /// The buffered rows, for the SQL engine.
    pub fn pending(&self) -> &[RecordBatch] {
        &self.pending
    }

    /// Rows buffered.
    pub fn pending_rows(&self) -> usize {
        self.pending.iter().map(RecordBatch::num_rows).sum()
    }

    /// Per source partition, the lowest offset still buffered: committing
    /// beyond it would lose those rows on a crash.
    pub fn lowest_pending_offsets(&self) -> HashMap<u32, i64> {
        let mut lowest = HashMap::new();
        for batch in &self.pending {
            let (Some(sources), Some(offsets)) = (
                batch.column_by_name(SOURCE_COLUMN),
                batch.column_by_name(OFFSET_COLUMN),
            ) else {
                continue;
            };
            let (sources, offsets) = (
                sources.as_primitive::<UInt32Type>(),
                offsets.as_primitive::<Int64Type>(),
            );
            for row in 0..sources.len() {
                let entry = lowest.entry(sources.value(row)).or_insert(i64::MAX);
                *entry = (*entry).min(offsets.value(row));
            }
        }
        lowest
    }
}

fn hash_id(id: &str) -> u128 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    u128::from(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::decode::EventDecoder;

    fn batch(events: &[(&str, i64)], offset: i64) -> RecordBatch {
        let events: Vec<String> = events
            .iter()
            .map(|(id, ts)| {
                format!(r#"{{"event_id":"{id}","ts":{ts},"stream_id":"s","type":"chat","event":"like","viewer_id":"v"}}"#)
            })
            .collect();
        let record = format!(
            r#"{{"schema_version":1,"received_ms":0,"events":[{}]}}"#,
            events.join(",")
        );
        let mut d = EventDecoder::default();
        d.append(record.as_bytes(), 0, offset).unwrap();
        d.finish().unwrap()
    }

    const A: &str = "00000000-0000-4000-8000-00000000000a";
    const B: &str = "00000000-0000-4000-8000-00000000000b";
    const C: &str = "00000000-0000-4000-8000-00000000000c";

    #[test]
    fn closes_each_kind_at_its_boundary_and_drops_late_and_repeated_rows() {
        let mut state = WindowState::new(vec![Tumbling::seconds(60), Tumbling::seconds(10)]);
        let admitted = state
            .admit(batch(&[(A, 5_000), (B, 12_000), (A, 5_000)], 100))
            .unwrap();
        assert_eq!(
            (
                admitted.fresh.num_rows(),
                admitted.duplicates,
                admitted.late.num_rows()
            ),
            (2, 1, 0)
        );

        let closing = state.closing(21_000);
        assert_eq!(
            closing,
            vec![
                Closing {
                    window: Tumbling::seconds(10),
                    from: None,
                    until: 20_000
                },
                Closing {
                    window: Tumbling::seconds(60),
                    from: None,
                    until: 0
                },
            ]
        );
        state.mark_emitted(&closing).unwrap();
        // Nothing is pruned: the 60 s window [0, 60 s) is still open.
        assert_eq!(state.pending_rows(), 2);
        assert_eq!(state.lowest_pending_offsets()[&0], 100);

        // ts 15 s is late (its 10 s window closed); 25 s is fresh.
        let admitted = state
            .admit(batch(&[(C, 15_000), (C, 25_000)], 101))
            .unwrap();
        assert_eq!(
            (admitted.fresh.num_rows(), admitted.late.num_rows()),
            (1, 1)
        );

        let closing = state.closing(61_000);
        assert_eq!(
            closing,
            vec![
                Closing {
                    window: Tumbling::seconds(10),
                    from: Some(20_000),
                    until: 60_000
                },
                Closing {
                    window: Tumbling::seconds(60),
                    from: Some(0),
                    until: 60_000
                },
            ]
        );
        state.mark_emitted(&closing).unwrap();
        assert_eq!(state.pending_rows(), 0);
        assert!(state.lowest_pending_offsets().is_empty());
        // A repeat of a pruned id is late now, not fresh.
        let admitted = state.admit(batch(&[(A, 5_000)], 102)).unwrap();
        assert_eq!(
            (admitted.fresh.num_rows(), admitted.late.num_rows()),
            (0, 1)
        );
    }
}
