//! Window state: accumulator states per pane, the ids of the events they
//! hold (for de-duplication), and how far windows have been emitted.
//!
//! Time has three lines. The *watermark* closes windows: a window is emitted
//! once the watermark passes its end. The *correction horizon* keeps pane
//! states after that: an event for an emitted window that arrives within the
//! horizon updates its panes and the window is emitted again (with a higher
//! version, as it now holds more events). Beyond the horizon the pane state is
//! dropped and an event for it is *too late*: the caller dead-letters it.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, BooleanArray, Int64Array, UInt64Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, UInt64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use livepulse_contract::arrow::col;
use serde::{Deserialize, Serialize};

use super::FastMap;
use super::engine::IncrementalSql;
use super::window::{WindowSpec, pane_ms};

/// States of one pane kept unreduced before they are combined.
const MAX_STATES_PER_PANE: usize = 8;

/// What [`WindowState::admit`] made of a batch.
#[derive(Debug)]
pub struct Admitted {
    /// First sightings that entered their panes.
    pub fresh: RecordBatch,
    /// Rows whose panes were dropped (beyond the correction horizon).
    pub too_late: RecordBatch,
    /// Rows dropped as repeats of an event already counted.
    pub duplicates: usize,
    /// Fresh rows that corrected an already emitted window.
    pub corrections: usize,
}

/// Windows to evaluate: per window kind, window starts.
pub type Due = Vec<(WindowSpec, BTreeSet<i64>)>;

/// Bookkeeping that is not accumulator state, saved in checkpoints as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Windows ending at or before this were emitted.
    pub emitted_until: Option<i64>,
    /// Panes before this were dropped; their events are too late.
    pub dropped_before: Option<i64>,
    /// Panes updated after a window over them was emitted.
    pub dirty: BTreeSet<i64>,
}

/// The pane states, event ids and emission progress of one job.
pub struct WindowState {
    windows: Vec<WindowSpec>,
    pane_ms: i64,
    horizon_ms: i64,
    panes: BTreeMap<i64, Vec<RecordBatch>>,
    /// Event id -> its pane, for every event in a kept pane.
    ids: FastMap<u128, i64>,
    progress: Progress,
}

impl WindowState {
    /// Empty state for `windows`, keeping panes `horizon_ms` past the close
    /// of their last window.
    pub fn new(windows: Vec<WindowSpec>, horizon_ms: i64) -> Self {
        Self {
            pane_ms: pane_ms(&windows),
            windows,
            horizon_ms,
            panes: BTreeMap::new(),
            ids: FastMap::default(),
            progress: Progress::default(),
        }
    }

    /// Splits `batch` (input schema) into fresh, duplicate and too-late
    /// rows and folds the fresh ones into their panes.
    pub async fn admit(&mut self, batch: RecordBatch, sql: &IncrementalSql) -> Result<Admitted> {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .cloned()
                .ok_or_else(|| ArrowError::SchemaError(format!("batch lacks `{name}`")))
        };
        let (ids, ts) = (column(col::EVENT_ID)?, column(col::TS)?);
        let (ids, ts) = (ids.as_string::<i32>(), ts.as_primitive::<Int64Type>());
        let mut fresh = Vec::with_capacity(batch.num_rows());
        let mut too_late = Vec::with_capacity(batch.num_rows());
        let (mut duplicates, mut corrections) = (0, 0);
        for (id, ts) in ids.iter().zip(ts.values()) {
            let pane = ts - ts.rem_euclid(self.pane_ms);
            let late = self.progress.dropped_before.is_some_and(|d| pane < d);
            let first = !late
                && match self.ids.entry(event_key(id.unwrap_or_default())) {
                    Entry::Vacant(slot) => {
                        slot.insert(pane);
                        true
                    }
                    Entry::Occupied(_) => false,
                };
            duplicates += usize::from(!late && !first);
            if first && self.emitted(pane) {
                corrections += 1;
                self.progress.dirty.insert(pane);
            }
            fresh.push(first);
            too_late.push(late);
        }
        let fresh = filter_record_batch(&batch, &BooleanArray::from(fresh))?;
        let too_late = filter_record_batch(&batch, &BooleanArray::from(too_late))?;
        if fresh.num_rows() > 0 {
            self.fold(sql.partial(fresh.clone()).await?, sql).await?;
        }
        Ok(Admitted {
            fresh,
            too_late,
            duplicates,
            corrections,
        })
    }

    /// Whether a window over `pane` was already emitted.
    fn emitted(&self, pane: i64) -> bool {
        let Some(until) = self.progress.emitted_until else {
            return false;
        };
        self.windows.iter().any(|w| w.first_end(pane) <= until)
    }

    /// Adds a state batch (any panes) to the panes it covers.
    async fn fold(&mut self, states: RecordBatch, sql: &IncrementalSql) -> Result<()> {
        let starts = states
            .column(sql.window_start_column())
            .as_primitive::<Int64Type>()
            .clone();
        let mut panes: Vec<i64> = starts.values().to_vec();
        panes.sort_unstable();
        panes.dedup();
        let single = panes.len() == 1;
        for pane in panes {
            let rows = if single {
                states.clone()
            } else {
                let mask: BooleanArray = starts.values().iter().map(|s| Some(*s == pane)).collect();
                filter_record_batch(&states, &mask)?
            };
            let pane_states = self.panes.entry(pane).or_default();
            pane_states.push(rows);
            if pane_states.len() > MAX_STATES_PER_PANE {
                let reduced = sql.reduce(std::mem::take(pane_states)).await?;
                *pane_states = vec![reduced];
            }
        }
        Ok(())
    }

    /// The end of the next window a rising watermark closes: the first one
    /// ending after the last emission, or over the first pane if nothing
    /// was emitted yet. `None` without panes.
    pub fn next_end(&self) -> Option<i64> {
        let first = *self.panes.keys().next()?;
        let after = self.progress.emitted_until.map_or(first, |u| u.max(first));
        self.windows.iter().map(|w| w.first_end(after)).min()
    }

    /// Windows to emit at `watermark`: those it closes for the first time,
    /// and emitted ones whose panes were corrected since. Call
    /// [`Self::emitted_at`] once they are written.
    pub fn due(&self, watermark: i64) -> Due {
        let until = self.progress.emitted_until;
        self.windows
            .iter()
            .map(|w| {
                let ends_due = |start: &i64| {
                    let end = start + w.width_ms();
                    end <= watermark && until.is_none_or(|u| end > u)
                };
                let corrected = |start: &i64| until.is_some_and(|u| start + w.width_ms() <= u);
                let mut starts = BTreeSet::new();
                for pane in self.panes.keys() {
                    starts.extend(w.windows_containing(*pane).into_iter().filter(ends_due));
                }
                for pane in &self.progress.dirty {
                    starts.extend(w.windows_containing(*pane).into_iter().filter(corrected));
                }
                (*w, starts)
            })
            .filter(|(_, starts)| !starts.is_empty())
            .collect()
    }

    /// Evaluates `due` windows: the job's rows per window kind.
    pub async fn evaluate(
        &self,
        due: &Due,
        sql: &IncrementalSql,
    ) -> Result<Vec<(WindowSpec, Vec<RecordBatch>)>> {
        let mut results = Vec::with_capacity(due.len());
        for (window, starts) in due {
            let mut states = Vec::new();
            for start in starts {
                for (_, pane) in self.panes.range(*start..start + window.width_ms()) {
                    for s in pane {
                        states.push(sql.relabel(s, *start)?);
                    }
                }
            }
            if !states.is_empty() {
                results.push((*window, sql.finish(states).await?));
            }
        }
        Ok(results)
    }

    /// Records that every window up to `watermark` (and every correction) was
    /// written, and drops panes beyond the correction horizon.
    pub fn emitted_at(&mut self, watermark: i64) {
        let until = self
            .progress
            .emitted_until
            .map_or(watermark, |u| u.max(watermark));
        self.progress.emitted_until = Some(until);
        self.progress.dirty.clear();
        // A pane is kept while some window over it is within the horizon.
        let last_end = |pane: i64| {
            self.windows
                .iter()
                .map(|w| w.last_end(pane))
                .max()
                .unwrap_or(pane)
        };
        let widest = self.windows.iter().map(|w| w.width_ms()).max().unwrap_or(0);
        let mut keep_from = until - self.horizon_ms - widest;
        keep_from -= keep_from.rem_euclid(self.pane_ms);
        while last_end(keep_from) + self.horizon_ms <= until {
            keep_from += self.pane_ms;
        }
        if self.progress.dropped_before.is_some_and(|d| d >= keep_from) {
            return;
        }
        self.progress.dropped_before = Some(keep_from);
        self.panes = self.panes.split_off(&keep_from);
        self.ids.retain(|_, pane| *pane >= keep_from);
    }

    /// Event ids held for de-duplication.
    pub fn tracked_ids(&self) -> usize {
        self.ids.len()
    }

    /// Panes held.
    pub fn panes(&self) -> usize {
        self.panes.len()
    }

    /// Bytes held by pane states (Arrow buffers).
    pub fn pane_bytes(&self) -> usize {
        self.panes
            .values()
            .flatten()
            .map(RecordBatch::get_array_memory_size)
            .sum()
    }

    /// Bytes held by the de-duplication ids (hash table slots and control bytes).
    pub fn id_bytes(&self) -> usize {
        self.ids.capacity() * (std::mem::size_of::<(u128, i64)>() + 1)
    }

    /// Emission progress, for checkpoints.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The pane states as one batch per pane (reduced), for checkpoints.
    pub async fn pane_states(&mut self, sql: &IncrementalSql) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::with_capacity(self.panes.len());
        for states in self.panes.values_mut() {
            if states.len() > 1 {
                *states = vec![sql.reduce(std::mem::take(states)).await?];
            }
            out.extend(states.iter().cloned());
        }
        Ok(out)
    }

    /// The tracked event ids as a batch (`hi`, `lo`, `pane`), for checkpoints.
    pub fn id_batch(&self) -> Result<RecordBatch> {
        let (hi, lo): (Vec<u64>, Vec<u64>) = self
            .ids
            .keys()
            .map(|k| ((k >> 64) as u64, *k as u64))
            .unzip();
        let panes: Int64Array = self.ids.values().copied().collect();
        Ok(RecordBatch::try_new(
            id_schema(),
            vec![
                Arc::new(UInt64Array::from(hi)),
                Arc::new(UInt64Array::from(lo)),
                Arc::new(panes),
            ],
        )?)
    }

    /// Restores what [`Self::progress`], [`Self::pane_states`] and
    /// [`Self::id_batch`] saved.
    pub async fn restore(
        &mut self,
        progress: Progress,
        states: Vec<RecordBatch>,
        ids: &RecordBatch,
        sql: &IncrementalSql,
    ) -> Result<()> {
        self.progress = progress;
        self.panes.clear();
        for batch in states {
            self.fold(batch, sql).await?;
        }
        let hi = ids.column(0).as_primitive::<UInt64Type>();
        let lo = ids.column(1).as_primitive::<UInt64Type>();
        let pane = ids.column(2).as_primitive::<Int64Type>();
        self.ids = (0..ids.num_rows())
            .map(|i| {
                (
                    (u128::from(hi.value(i)) << 64) | u128::from(lo.value(i)),
                    pane.value(i),
                )
            })
            .collect();
        Ok(())
    }
}

/// Schema of [`WindowState::id_batch`].
pub(crate) fn id_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("hi", DataType::UInt64, false),
        Field::new("lo", DataType::UInt64, false),
        Field::new("pane", DataType::Int64, false),
    ]))
}

/// The 128-bit key of an event id: the UUID itself (the collector accepts
/// only UUIDs), or a hash of the text for producers that bypass it.
fn event_key(id: &str) -> u128 {
    hyphenated_uuid(id.as_bytes())
        .or_else(|| uuid::Uuid::try_parse(id).ok().map(|u| u.as_u128()))
        .unwrap_or_else(|| {
            use std::hash::{Hash, Hasher};
            // Fixed keys: the ids are checkpointed, so the hash must not
            // change between runs.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            id.hash(&mut h);
            u128::from(h.finish())
        })
}

/// The canonical `8-4-4-4-12` form every client sends, parsed in one pass:
/// the general parser was 8% of the replay benchmark's time.
fn hyphenated_uuid(id: &[u8]) -> Option<u128> {
    const DIGITS: [u8; 256] = {
        let mut table = [u8::MAX; 256];
        let mut i = 0;
        while i < 10 {
            table[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            table[b'a' as usize + i] = 10 + i as u8;
            table[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        table
    };
    if id.len() != 36 || [8, 13, 18, 23].iter().any(|&i| id[i] != b'-') {
        return None;
    }
    let mut value = 0u128;
    for (i, &c) in id.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        let digit = DIGITS[usize::from(c)];
        if digit == u8::MAX {
            return None;
        }
        value = value << 4 | u128::from(digit);
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use livepulse_contract::record::Payload;

    use super::*;
    use crate::runtime::decode::tests::event_decoder;

    const SQL: &str = "SELECT window_start, stream_id, count(*) AS n \
                       FROM window_events GROUP BY window_start, stream_id";

    fn batch(events: &[(u32, i64)]) -> RecordBatch {
        let mut d = event_decoder();
        for (id, ts) in events {
            let record = format!(
                r#"{{"schema_version":1,"received_ms":0,"events":[{{"event_id":"00000000-0000-4000-8000-{id:012}",
                "ts":{ts},"stream_id":"s","type":"chat","event":"like","viewer_id":"v"}}]}}"#
            );
            d.append(Payload::Events, record.as_bytes(), 0, 0).unwrap();
        }
        d.finish().unwrap()
    }

    async fn counts(state: &WindowState, due: &Due, sql: &IncrementalSql) -> Vec<(i64, i64, i64)> {
        let mut out = Vec::new();
        for (window, batches) in state.evaluate(due, sql).await.unwrap() {
            for b in batches {
                let starts = b.column(0).as_primitive::<Int64Type>();
                let n = b.column(2).as_primitive::<Int64Type>();
                for i in 0..b.num_rows() {
                    out.push((window.width_ms(), starts.value(i), n.value(i)));
                }
            }
        }
        out.sort_unstable();
        out
    }

    #[tokio::test]
    async fn closes_corrects_and_finally_drops_windows() {
        let hop = WindowSpec::Hop {
            slide_ms: 10_000,
            width_ms: 30_000,
        };
        let windows = vec![WindowSpec::tumble_secs(10), hop];
        let sql = IncrementalSql::plan(SQL, pane_ms(&windows), event_decoder().schema())
            .await
            .unwrap();
        let mut state = WindowState::new(windows, 20_000);
        assert_eq!(state.next_end(), None);

        let a = state
            .admit(batch(&[(1, 5_000), (2, 15_000), (1, 5_000)]), &sql)
            .await
            .unwrap();
        assert_eq!((a.fresh.num_rows(), a.duplicates, a.corrections), (2, 1, 0));
        // The first windows over pane 0 (the tumble and a hop) end at 10 s.
        assert_eq!(state.next_end(), Some(10_000));

        // Watermark 20 s closes tumble [0,10) and [10,20), and the hop
        // windows ending at 10 s and 20 s.
        let due = state.due(20_000);
        assert_eq!(
            counts(&state, &due, &sql).await,
            vec![
                (10_000, 0, 1),
                (10_000, 10_000, 1),
                (30_000, -20_000, 1),
                (30_000, -10_000, 2),
            ]
        );
        state.emitted_at(20_000);
        assert!(state.due(20_000).is_empty());
        assert_eq!(state.next_end(), Some(30_000));

        // A late event for [0, 10) within the horizon re-emits every window over it.
        let a = state.admit(batch(&[(3, 9_000)]), &sql).await.unwrap();
        assert_eq!((a.fresh.num_rows(), a.corrections), (1, 1));
        assert_eq!(
            counts(&state, &state.due(20_000), &sql).await,
            vec![(10_000, 0, 2), (30_000, -20_000, 2), (30_000, -10_000, 3)]
        );
        state.emitted_at(20_000);

        // The state survives a checkpoint round trip.
        let panes = state.pane_states(&sql).await.unwrap();
        let ids = state.id_batch().unwrap();
        let mut restored = WindowState::new(vec![WindowSpec::tumble_secs(10), hop], 20_000);
        restored
            .restore(state.progress().clone(), panes, &ids, &sql)
            .await
            .unwrap();
        assert_eq!(restored.tracked_ids(), 3);
        let a = restored.admit(batch(&[(2, 15_000)]), &sql).await.unwrap();
        assert_eq!(a.duplicates, 1);
        assert_eq!(
            counts(&restored, &restored.due(70_000), &sql).await,
            vec![(30_000, 0, 3), (30_000, 10_000, 1)]
        );

        // At 70 s every window over panes 0 s to 20 s is beyond the horizon
        // (the last, [20 s, 50 s), ended 20 s ago).
        assert_eq!(
            counts(&state, &state.due(70_000), &sql).await,
            vec![(30_000, 0, 3), (30_000, 10_000, 1)]
        );
        state.emitted_at(70_000);
        assert_eq!(state.progress().dropped_before, Some(30_000));
        assert_eq!((state.panes(), state.tracked_ids()), (0, 0));
        let a = state
            .admit(batch(&[(4, 29_999), (1, 5_000)]), &sql)
            .await
            .unwrap();
        assert_eq!((a.too_late.num_rows(), a.fresh.num_rows()), (2, 0));
    }

    #[test]
    fn event_keys_are_the_uuid_in_any_form_and_a_hash_otherwise() {
        let id = "6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10";
        let value = uuid::Uuid::parse_str(id).unwrap().as_u128();
        for form in [
            id.to_owned(),
            id.to_uppercase(),
            id.replace('-', ""),
            format!("{{{id}}}"),
            format!("urn:uuid:{id}"),
        ] {
            assert_eq!(event_key(&form), value, "{form}");
        }
        assert_eq!(hyphenated_uuid(id.as_bytes()), Some(value));
        for bad in [
            "6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b1g",
            "6f1c8a52-2f43-4a55-9a33+0d2f0c1a9b10",
            "6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b1",
        ] {
            assert_eq!(hyphenated_uuid(bad.as_bytes()), None, "{bad}");
            assert_eq!(event_key(bad), event_key(bad));
            assert!(event_key(bad) <= u128::from(u64::MAX), "{bad} is hashed");
        }
    }
}
