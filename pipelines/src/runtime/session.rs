//! Session windows: per key, a run of events with no silence of `gap` or
//! longer between consecutive ones (Arroyo's `session(interval '30 seconds')`).
//!
//! Sessions have no fixed bounds and one is open per active viewer, so their
//! state must be small. DataFusion's partial phase still aggregates every
//! batch (grouped by key and by a pane as wide as the gap, so a group never
//! spans a silence), but its accumulator states are then merged natively into
//! one fixed-width slot per session. That limits session queries to
//! aggregates whose states merge by addition, minimum or maximum (`count`,
//! `sum`, `min`, `max`, with `FILTER`, without `DISTINCT`) and requires
//! `min(ts)` and `max(ts)`, the session's bounds. `min` and `max` of a text
//! column are for categorical values (a viewer's device, CDN, network): the
//! values are interned once per state, so a slot holds a number. A closing session's slot is
//! turned back into a state row for DataFusion's final phase, so its output
//! row is computed by the job's own SQL.
//!
//! A session closes once the watermark is `gap` past its last event. Late
//! events merge into open sessions, and into emitted ones within the
//! correction horizon: the session is emitted again with a higher version.
//! When a late event moves a session's start, or joins two sessions, the
//! row under the old start is *retracted*: it is emitted again from an empty
//! state (every count 0), which the job writes with the highest version.
//! Sessions restored from a checkpoint may have been emitted after it, so
//! they are retracted the same way.
//!
//! A session that did not exist at the checkpoint may also have been
//! emitted before a crash, and the replay may give it another start (an
//! event that arrived after the emission arrives before it). So every
//! emission lists the (key, first, last) of the sessions it shows, and the
//! runtime journals that list durably before writing the rows (see
//! [`super::checkpoint::CheckpointStore::journal_shown`]). A restore
//! folds the journal back in as empty sessions flagged as maybe emitted:
//! replayed events merge into them, and a start that did not survive is
//! retracted.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, StringArray, StringBuilder, UInt64Array,
};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_expr::expressions::Column;
use livepulse_contract::arrow::col;

use super::FastMap;
use super::engine::IncrementalSql;

/// Column of a checkpointed session batch with the slot's flags.
const FLAGS_COLUMN: &str = "_session_flags";

const EMITTED: i64 = 1 << 62;
/// Changed since emitted: emit again.
const DIRTY: i64 = 1 << 61;
/// Restored from a checkpoint unemitted: it may have been emitted after it.
const MAYBE_EMITTED: i64 = 1 << 60;
/// Only the journaled bounds of a maybe emitted session, no events yet: it
/// is not emitted on its own, or its empty row would retract the start its
/// events are about to give it again.
const SHOWN_ONLY: i64 = 1 << 59;
const FLAG_BITS: i64 = EMITTED | DIRTY | MAYBE_EMITTED | SHOWN_ONLY;
/// The low bits of a slot's first word are its null mask.
const MAX_STATES: usize = 59;
/// Words before a slot's state values: flags and null mask, next slot.
const HEADER: usize = 2;
const NO_SLOT: i64 = -1;

/// How one accumulator state field merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Merge {
    Add,
    Min,
    Max,
}

/// What a state field's slot word holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Int,
    UInt,
    /// An id of an interned string.
    Text,
}

#[derive(Debug, Clone, Copy)]
struct StateField {
    merge: Merge,
    value: Value,
    /// A `count` state: 0, not null, when there were no rows.
    count: bool,
}

/// The distinct text values of a session state's text states, each stored
/// once; slots refer to them by id.
#[derive(Debug, Default)]
struct Interner {
    ids: FastMap<Box<str>, i64>,
    values: Vec<Box<str>>,
}

impl Interner {
    fn id(&mut self, value: &str) -> i64 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        let id = self.values.len() as i64;
        self.values.push(value.into());
        self.ids.insert(value.into(), id);
        id
    }

    fn value(&self, id: i64) -> &str {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.values.get(i))
            .map_or("", |v| v)
    }

    fn heap_bytes(&self) -> usize {
        let text: usize = self.values.iter().map(|v| v.len()).sum();
        2 * text
            + self.ids.capacity() * (std::mem::size_of::<(Box<str>, i64)>() + 1)
            + self.values.capacity() * std::mem::size_of::<Box<str>>()
    }
}

/// Where a session query keeps what in its state rows.
#[derive(Debug)]
struct Layout {
    window_start: usize,
    keys: Vec<usize>,
    /// Index of the first state field in the state schema.
    first_state: usize,
    states: Vec<StateField>,
    /// State indices of `min(ts)` and `max(ts)`.
    first_ts: usize,
    last_ts: usize,
}

impl Layout {
    fn of(sql: &IncrementalSql) -> Result<Self> {
        let schema = sql.state_schema();
        let unsupported = |what: String| {
            DataFusionError::Plan(format!(
                "session windows merge count, sum, min and max without DISTINCT over integers (and min and max of text); {what}"
            ))
        };
        let groups = sql.group_columns();
        let mut keys = Vec::new();
        for i in (0..groups).filter(|i| *i != sql.window_start_column()) {
            if schema.field(i).data_type() != &DataType::Utf8 {
                return Err(unsupported(format!(
                    "key `{}` is not a string",
                    schema.field(i).name()
                )));
            }
            keys.push(i);
        }
        let mut states = Vec::new();
        let (mut first_ts, mut last_ts) = (None, None);
        for (aggregate, filtered) in sql.aggregates() {
            let name = aggregate.fun().name().to_ascii_lowercase();
            let merge = match name.as_str() {
                "count" | "sum" => Merge::Add,
                "min" => Merge::Min,
                "max" => Merge::Max,
                _ => return Err(unsupported(format!("`{}` is not", aggregate.name()))),
            };
            if aggregate.is_distinct() {
                return Err(unsupported(format!("`{}` is DISTINCT", aggregate.name())));
            }
            let on_ts = !filtered
                && matches!(aggregate.expressions().as_slice(),
                    [arg] if arg.downcast_ref::<Column>().is_some_and(|c| c.name() == col::TS));
            for field in aggregate.state_fields()? {
                let value = match (field.data_type(), merge) {
                    (DataType::Int64, _) => Value::Int,
                    (DataType::UInt64, _) => Value::UInt,
                    (DataType::Utf8, Merge::Min | Merge::Max) => Value::Text,
                    (other, _) => {
                        return Err(unsupported(format!(
                            "`{}` keeps a {other} state",
                            aggregate.name()
                        )));
                    }
                };
                match merge {
                    Merge::Min if on_ts => first_ts = Some(states.len()),
                    Merge::Max if on_ts => last_ts = Some(states.len()),
                    _ => {}
                }
                states.push(StateField {
                    merge,
                    value,
                    count: name == "count",
                });
            }
        }
        if states.len() > MAX_STATES {
            return Err(unsupported(format!("more than {MAX_STATES} states")));
        }
        let (Some(first_ts), Some(last_ts)) = (first_ts, last_ts) else {
            return Err(DataFusionError::Plan(
                "a session query must compute min(ts) and max(ts) without FILTER: they bound the session".into(),
            ));
        };
        Ok(Self {
            window_start: sql.window_start_column(),
            keys,
            first_state: groups,
            states,
            first_ts,
            last_ts,
        })
    }
}

/// What [`SessionState::due`] hands out.
#[derive(Debug)]
pub struct DueSessions {
    /// State rows of the closed, corrected and retracted sessions.
    pub states: RecordBatch,
    /// The journal entry of the sessions with events among them, for
    /// [`SessionState::restore_shown`].
    pub shown: Vec<u8>,
}

/// Open and recently emitted sessions of one session query.
///
/// Memory: one hash entry per key (its encoded key bytes and a slot index)
/// and one slot of `2 + states` words per session, in one vector.
pub struct SessionState {
    gap_ms: i64,
    horizon_ms: i64,
    layout: Layout,
    schema: SchemaRef,
    /// Encoded key -> its first slot; a key's slots are chained.
    index: FastMap<Box<[u8]>, u32>,
    slots: Vec<i64>,
    free: Vec<u32>,
    /// The watermark of the last emission.
    emitted_until: Option<i64>,
    /// Sessions whose old start must be retracted, by key.
    retractions: Vec<(Box<[u8]>, i64)>,
    late_dropped: u64,
    /// Scratch: the sessions a state row touches.
    touching: Vec<u32>,
    /// No session waiting to be emitted closes before this watermark, and
    /// none expires before `next_expiry`: until then nothing is scanned.
    next_close: i64,
    next_expiry: i64,
    /// Values of the text states.
    texts: Interner,
}

impl SessionState {
    /// Empty state for the session query `sql` with silence `gap_ms`,
    /// keeping emitted sessions `horizon_ms` past their close.
    pub fn new(sql: &IncrementalSql, gap_ms: i64, horizon_ms: i64) -> Result<Self> {
        Ok(Self {
            gap_ms,
            horizon_ms,
            layout: Layout::of(sql)?,
            schema: sql.state_schema(),
            index: FastMap::default(),
            slots: Vec::new(),
            free: Vec::new(),
            emitted_until: None,
            retractions: Vec::new(),
            late_dropped: 0,
            touching: Vec::new(),
            next_close: i64::MAX,
            next_expiry: i64::MAX,
            texts: Interner::default(),
        })
    }

    fn stride(&self) -> usize {
        HEADER + self.layout.states.len()
    }

    fn slot(&self, slot: u32) -> &[i64] {
        let at = slot as usize * self.stride();
        &self.slots[at..at + self.stride()]
    }

    fn slot_mut(&mut self, slot: u32) -> &mut [i64] {
        let stride = self.stride();
        let at = slot as usize * stride;
        &mut self.slots[at..at + stride]
    }

    fn bounds(&self, slot: u32) -> (i64, i64) {
        let s = self.slot(slot);
        (
            s[HEADER + self.layout.first_ts],
            s[HEADER + self.layout.last_ts],
        )
    }

    /// Folds state rows of the partial phase (any keys and panes) into
    /// sessions. Rows too late for any kept session are counted in
    /// [`Self::late_dropped`].
    pub fn fold(&mut self, states: &RecordBatch) -> Result<()> {
        self.fold_with_flags(states, None)
    }

    fn fold_with_flags(&mut self, states: &RecordBatch, flags: Option<&Int64Array>) -> Result<()> {
        let keys: Vec<_> = self
            .layout
            .keys
            .iter()
            .map(|i| states.column(*i).as_string::<i32>())
            .collect();
        let columns: Vec<StateColumn> = self
            .layout
            .states
            .iter()
            .enumerate()
            .map(|(i, field)| StateColumn::of(states.column(self.layout.first_state + i), field))
            .collect::<Result<_>>()?;
        let mut key = Vec::new();
        let mut row = vec![0; self.stride()];
        for r in 0..states.num_rows() {
            key.clear();
            for k in &keys {
                encode_key(&mut key, k.is_valid(r).then(|| k.value(r)));
            }
            let mut header = flags.map_or(0, |f| f.value(r));
            for (i, column) in columns.iter().enumerate() {
                row[HEADER + i] = match column.word(r, &mut self.texts) {
                    Some(word) => word,
                    None => {
                        header |= 1 << i;
                        0
                    }
                };
            }
            row[0] = header;
            if flags.is_some() {
                self.insert(&key, &row);
                self.pending(row[HEADER + self.layout.last_ts]);
            } else {
                self.merge_row(&key, &row);
            }
        }
        Ok(())
    }

    /// Merges one state row into the sessions of `key`.
    fn merge_row(&mut self, key: &[u8], row: &[i64]) {
        let (first, last) = (
            row[HEADER + self.layout.first_ts],
            row[HEADER + self.layout.last_ts],
        );
        if self
            .emitted_until
            .is_some_and(|w| last + self.gap_ms + self.horizon_ms <= w)
        {
            self.late_dropped += 1;
            return;
        }
        let mut touching = std::mem::take(&mut self.touching);
        touching.clear();
        touching.extend(self.chain(key).filter(|s| {
            let (start, end) = self.bounds(*s);
            first - end < self.gap_ms && start - last < self.gap_ms
        }));
        if let Some((&into, rest)) = touching.split_first() {
            let shown_only = row[0] & SHOWN_ONLY != 0
                && touching.iter().all(|s| self.slot(*s)[0] & SHOWN_ONLY != 0);
            // Starts under which a row may exist: all but the merged
            // session's are retracted.
            let mut shown: Vec<i64> = touching
                .iter()
                .filter(|s| self.slot(**s)[0] & (EMITTED | MAYBE_EMITTED) != 0)
                .map(|s| self.bounds(*s).0)
                .collect();
            self.merge_into(into, row);
            for other in rest {
                let other_row = self.slot(*other).to_vec();
                self.merge_into(into, &other_row);
                self.remove(key, *other);
            }
            if row[0] & (EMITTED | MAYBE_EMITTED) != 0 {
                shown.push(first);
            }
            let (start, _) = self.bounds(into);
            shown.retain(|s| *s != start);
            self.retractions
                .extend(shown.into_iter().map(|s| (Box::from(key), s)));
            let merged = &mut self.slot_mut(into)[0];
            if *merged & EMITTED != 0 {
                *merged |= DIRTY;
            }
            if !shown_only {
                *merged &= !SHOWN_ONLY;
            }
            self.pending(self.bounds(into).1);
        } else {
            self.insert(key, row);
            self.pending(last);
        }
        self.touching = touching;
    }

    /// Notes a session waiting to be emitted whose last event is `last`.
    fn pending(&mut self, last: i64) {
        self.next_close = self.next_close.min(last + self.gap_ms);
        self.next_expiry = self.next_expiry.min(last + self.gap_ms + self.horizon_ms);
    }

    /// Merges `row`'s states (and emission flags) into `slot`.
    fn merge_into(&mut self, slot: u32, row: &[i64]) {
        let stride = self.stride();
        let (states, slots, texts) = (&self.layout.states, &mut self.slots, &self.texts);
        let at = slot as usize * stride;
        let target = &mut slots[at..at + stride];
        target[0] |= row[0] & (EMITTED | MAYBE_EMITTED);
        for (i, field) in states.iter().enumerate() {
            let bit = 1 << i;
            if row[0] & bit != 0 {
                continue;
            }
            let (a, b) = (target[HEADER + i], row[HEADER + i]);
            target[HEADER + i] = if target[0] & bit != 0 {
                target[0] &= !bit;
                b
            } else {
                merge(*field, a, b, texts)
            };
        }
    }

    /// Slots of `key`'s sessions.
    fn chain<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = u32> + 'a {
        let mut next = self.index.get(key).map_or(NO_SLOT, |s| i64::from(*s));
        std::iter::from_fn(move || {
            let slot = u32::try_from(next).ok()?;
            next = self.slot(slot)[1];
            Some(slot)
        })
    }

    /// A new session of `key` from `row` (header and states).
    fn insert(&mut self, key: &[u8], row: &[i64]) {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot =
                    u32::try_from(self.slots.len() / self.stride()).expect("< 2^32 sessions");
                self.slots.resize(self.slots.len() + self.stride(), 0);
                slot
            }
        };
        let head = self.index.get(key).map_or(NO_SLOT, |s| i64::from(*s));
        let target = self.slot_mut(slot);
        target.copy_from_slice(row);
        target[1] = head;
        match self.index.get_mut(key) {
            Some(first) => *first = slot,
            None => {
                self.index.insert(key.into(), slot);
            }
        }
    }

    /// Unlinks and frees `slot` from `key`'s chain.
    fn remove(&mut self, key: &[u8], slot: u32) {
        let next = self.slot(slot)[1];
        let previous = self
            .chain(key)
            .find(|s| self.slot(*s)[1] == i64::from(slot));
        match previous {
            Some(p) => self.slot_mut(p)[1] = next,
            None => match u32::try_from(next) {
                Ok(next) => {
                    self.index.insert(key.into(), next);
                }
                Err(_) => {
                    self.index.remove(key);
                }
            },
        }
        self.slot_mut(slot).fill(0);
        self.free.push(slot);
    }

    /// Sessions the watermark closes for the first time, closed ones
    /// corrected since, and retractions. Journal their `shown` entry, then
    /// write their rows, then call [`Self::emitted_at`].
    pub fn due(&self, watermark: i64) -> Result<DueSessions> {
        let mut picked: Vec<(&[u8], Vec<i64>)> = Vec::new();
        let mut shown = Vec::new();
        // Nothing waiting closes before `next_close`: no scan until then.
        if watermark >= self.next_close {
            for key in self.index.keys() {
                for slot in self.chain(key) {
                    let s = self.slot(slot);
                    let pending = s[0] & EMITTED == 0 || s[0] & DIRTY != 0;
                    if pending && s[0] & SHOWN_ONLY == 0 && self.closed(slot, watermark) {
                        encode_shown(&mut shown, key, self.bounds(slot));
                        picked.push((key, s.to_vec()));
                    }
                }
            }
        }
        for (key, start) in &self.retractions {
            picked.push((key, self.empty_row(*start)));
        }
        Ok(DueSessions {
            states: self.state_batch(&picked, false)?,
            shown,
        })
    }

    /// Folds in a journal entry of [`DueSessions::shown`] written since the
    /// restored checkpoint: each session it lists becomes an empty session
    /// with its bounds, maybe emitted, that the replayed events merge into.
    /// Until they do, it is not emitted.
    pub fn restore_shown(&mut self, mut entry: &[u8]) -> Result<()> {
        while !entry.is_empty() {
            let (key, first, last) = decode_shown(&mut entry).ok_or_else(|| {
                DataFusionError::Internal("a truncated session journal entry".into())
            })?;
            let beyond_horizon = self
                .emitted_until
                .is_some_and(|w| last + self.gap_ms + self.horizon_ms <= w);
            if !beyond_horizon {
                let mut row = self.empty_row(first);
                let (first_ts, last_ts) = (self.layout.first_ts, self.layout.last_ts);
                row[0] = (row[0] & !(1 << first_ts | 1 << last_ts)) | MAYBE_EMITTED | SHOWN_ONLY;
                row[HEADER + last_ts] = last;
                self.merge_row(key, &row);
            }
        }
        Ok(())
    }

    fn closed(&self, slot: u32, watermark: i64) -> bool {
        self.bounds(slot).1 + self.gap_ms <= watermark
    }

    /// The state row of no events at `start`: counts 0, other states null.
    fn empty_row(&self, start: i64) -> Vec<i64> {
        let mut row = vec![0; self.stride()];
        for (i, field) in self.layout.states.iter().enumerate() {
            if !field.count {
                row[0] |= 1 << i;
            }
        }
        // The window start column reads it; the state itself stays null.
        row[HEADER + self.layout.first_ts] = start;
        row
    }

    /// Records that what [`Self::due`] returned at `watermark` was written,
    /// and drops sessions closed longer ago than the correction horizon.
    pub fn emitted_at(&mut self, watermark: i64) {
        let until = self.emitted_until.map_or(watermark, |u| u.max(watermark));
        self.emitted_until = Some(until);
        self.retractions.clear();
        if until < self.next_close && until < self.next_expiry {
            return;
        }
        let (stride, last_ts) = (self.stride(), HEADER + self.layout.last_ts);
        let (gap, horizon) = (self.gap_ms, self.horizon_ms);
        let (slots, free) = (&mut self.slots, &mut self.free);
        let (mut next_close, mut next_expiry) = (i64::MAX, i64::MAX);
        self.index.retain(|_, head| {
            let (mut kept_head, mut previous) = (NO_SLOT, None::<usize>);
            let mut current = i64::from(*head);
            while let Ok(slot) = usize::try_from(current) {
                let at = slot * stride;
                let next = slots[at + 1];
                let last = slots[at + last_ts];
                if last + gap <= until {
                    slots[at] = (slots[at] | EMITTED) & !(DIRTY | MAYBE_EMITTED);
                } else {
                    next_close = next_close.min(last + gap);
                }
                if last + gap + horizon <= until {
                    slots[at..at + stride].fill(0);
                    free.push(u32::try_from(slot).expect("slot index"));
                    if let Some(p) = previous {
                        slots[p + 1] = next;
                    }
                } else {
                    next_expiry = next_expiry.min(last + gap + horizon);
                    if previous.is_none() {
                        kept_head = current;
                    }
                    previous = Some(at);
                }
                current = next;
            }
            match u32::try_from(kept_head) {
                Ok(slot) => {
                    *head = slot;
                    true
                }
                Err(_) => false,
            }
        });
        (self.next_close, self.next_expiry) = (next_close, next_expiry);
    }

    /// Every kept session as state rows with a flags column, for checkpoints.
    pub fn checkpoint_batch(&self) -> Result<RecordBatch> {
        let rows: Vec<(&[u8], Vec<i64>)> = self
            .index
            .keys()
            .flat_map(|key| self.chain(key).map(move |s| (key.as_ref(), s)))
            .map(|(key, slot)| (key, self.slot(slot).to_vec()))
            .collect();
        self.state_batch(&rows, true)
    }

    /// Restores [`Self::checkpoint_batch`] and the emission watermark. Every
    /// unemitted session may have been emitted after the checkpoint.
    pub fn restore(&mut self, batch: &RecordBatch, emitted_until: Option<i64>) -> Result<()> {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
        self.retractions.clear();
        (self.next_close, self.next_expiry) = (i64::MAX, i64::MAX);
        self.emitted_until = emitted_until;
        let flags = batch
            .column_by_name(FLAGS_COLUMN)
            .ok_or_else(|| {
                DataFusionError::Internal(format!("session checkpoint lacks {FLAGS_COLUMN}"))
            })?
            .as_primitive::<Int64Type>()
            .iter()
            .map(|f| {
                let f = f.unwrap_or(0) & FLAG_BITS;
                if f & EMITTED == 0 {
                    f | MAYBE_EMITTED
                } else {
                    f
                }
            })
            .collect::<Int64Array>();
        self.fold_with_flags(batch, Some(&flags))
    }

    /// The schema of [`Self::checkpoint_batch`].
    fn checkpoint_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(FLAGS_COLUMN, DataType::Int64, false));
        Arc::new(Schema::new(fields))
    }

    /// Sessions held (open and within the correction horizon).
    pub fn sessions(&self) -> usize {
        self.slots.len() / self.stride() - self.free.len()
    }

    /// State rows dropped because every session they could belong to was
    /// beyond the correction horizon.
    pub fn late_dropped(&self) -> u64 {
        self.late_dropped
    }

    /// Bytes of memory the state holds: hash table, key bytes, slots and
    /// interned text values.
    pub fn heap_bytes(&self) -> usize {
        let entry = std::mem::size_of::<(Box<[u8]>, u32)>() + 1;
        self.index.capacity() * entry
            + self.index.keys().map(|k| k.len()).sum::<usize>()
            + self.slots.capacity() * 8
            + self.free.capacity() * 4
            + self.texts.heap_bytes()
    }

    /// State rows (group columns, then states) from slots; the window start
    /// is the session's first event. With `flags`, a flags column follows.
    fn state_batch(&self, rows: &[(&[u8], Vec<i64>)], flags: bool) -> Result<RecordBatch> {
        let layout = &self.layout;
        let mut columns: Vec<Option<ArrayRef>> = vec![None; layout.first_state];
        columns[layout.window_start] = Some(Arc::new(
            rows.iter()
                .map(|(_, r)| r[HEADER + layout.first_ts])
                .collect::<Int64Array>(),
        ));
        let mut keys: Vec<StringBuilder> =
            layout.keys.iter().map(|_| StringBuilder::new()).collect();
        for (key, _) in rows {
            let mut rest = *key;
            for builder in &mut keys {
                builder.append_option(decode_key(&mut rest));
            }
        }
        for (i, mut builder) in layout.keys.iter().zip(keys) {
            columns[*i] = Some(Arc::new(builder.finish()));
        }
        let mut columns: Vec<ArrayRef> = columns
            .into_iter()
            .map(|c| c.expect("every group column"))
            .collect();
        for (i, field) in layout.states.iter().enumerate() {
            let values = rows
                .iter()
                .map(|(_, r)| (r[0] & (1 << i) == 0).then_some(r[HEADER + i]));
            columns.push(match field.value {
                Value::UInt => {
                    Arc::new(values.map(|v| v.map(|v| v as u64)).collect::<UInt64Array>())
                }
                Value::Int => Arc::new(values.collect::<Int64Array>()),
                Value::Text => Arc::new(
                    values
                        .map(|v| v.map(|id| self.texts.value(id)))
                        .collect::<StringArray>(),
                ),
            });
        }
        let schema = if flags {
            columns.push(Arc::new(
                rows.iter()
                    .map(|(_, r)| r[0] & FLAG_BITS)
                    .collect::<Int64Array>(),
            ));
            self.checkpoint_schema()
        } else {
            Arc::clone(&self.schema)
        };
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// Merges state `b` into `a`.
fn merge(field: StateField, a: i64, b: i64, texts: &Interner) -> i64 {
    match (field.merge, field.value) {
        (Merge::Add, _) => a.wrapping_add(b),
        (Merge::Min, Value::Int) => a.min(b),
        (Merge::Max, Value::Int) => a.max(b),
        (Merge::Min, Value::UInt) => (a as u64).min(b as u64) as i64,
        (Merge::Max, Value::UInt) => (a as u64).max(b as u64) as i64,
        (Merge::Min, Value::Text) => std::cmp::min_by_key(a, b, |id| texts.value(*id)),
        (Merge::Max, Value::Text) => std::cmp::max_by_key(a, b, |id| texts.value(*id)),
    }
}

/// A state column read as slot words.
enum StateColumn<'a> {
    /// 64-bit integers (unsigned ones reinterpreted, bit for bit).
    Words(ScalarBuffer<i64>, Option<NullBuffer>),
    Text(&'a StringArray),
}

impl<'a> StateColumn<'a> {
    fn of(array: &'a ArrayRef, field: &StateField) -> Result<Self> {
        match (array.data_type(), field.value) {
            (DataType::Int64 | DataType::UInt64, Value::Int | Value::UInt) => {
                let data = array.to_data();
                let values =
                    ScalarBuffer::new(data.buffers()[0].clone(), data.offset(), data.len());
                Ok(Self::Words(values, array.nulls().cloned()))
            }
            (DataType::Utf8, Value::Text) => Ok(Self::Text(array.as_string::<i32>())),
            (other, _) => Err(DataFusionError::Internal(format!(
                "session state column of type {other}"
            ))),
        }
    }

    /// Row `r`'s word, or `None` for a null.
    fn word(&self, r: usize, texts: &mut Interner) -> Option<i64> {
        match self {
            Self::Words(values, nulls) => {
                (!nulls.as_ref().is_some_and(|n| n.is_null(r))).then(|| values[r])
            }
            Self::Text(array) => array.is_valid(r).then(|| texts.id(array.value(r))),
        }
    }
}

/// Appends a nullable key part: a null flag, then a length-prefixed string.
fn encode_key(out: &mut Vec<u8>, part: Option<&str>) {
    match part {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// Appends a shown session to a journal entry: its encoded key and bounds.
fn encode_shown(out: &mut Vec<u8>, key: &[u8], (first, last): (i64, i64)) {
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&first.to_le_bytes());
    out.extend_from_slice(&last.to_le_bytes());
}

/// Reads back one session written by [`encode_shown`], advancing `rest`.
fn decode_shown<'a>(rest: &mut &'a [u8]) -> Option<(&'a [u8], i64, i64)> {
    let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let key = rest.get(4..4 + len)?;
    let bounds = rest.get(4 + len..4 + len + 16)?;
    let first = i64::from_le_bytes(bounds[..8].try_into().ok()?);
    let last = i64::from_le_bytes(bounds[8..].try_into().ok()?);
    *rest = &rest[4 + len + 16..];
    Some((key, first, last))
}

/// Reads back one part written by [`encode_key`], advancing `rest`.
fn decode_key<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
    let (flag, tail) = rest.split_first()?;
    *rest = tail;
    if *flag == 0 {
        return None;
    }
    let (len, tail) = rest.split_at(4);
    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    let (text, tail) = tail.split_at(len);
    *rest = tail;
    std::str::from_utf8(text).ok()
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;

    use livepulse_contract::record::Payload;

    use super::*;
    use crate::runtime::decode::tests::event_decoder;

    const GAP: i64 = 30_000;
    const SQL: &str = "SELECT window_start, viewer_id, min(ts) AS first_ms, max(ts) AS last_ms, \
                       count(*) AS n, sum(played_ms) AS played \
                       FROM window_events GROUP BY window_start, viewer_id";

    fn batch(events: &[(u32, &str, i64)]) -> RecordBatch {
        let mut d = event_decoder();
        for (id, viewer, ts) in events {
            let record = format!(
                r#"{{"schema_version":1,"received_ms":0,"events":[{{"event_id":"00000000-0000-4000-8000-{id:012}",
                "ts":{ts},"stream_id":"s","type":"player","event":"heartbeat","session_id":"p","viewer_id":"{viewer}","played_ms":1}}]}}"#
            );
            d.append(Payload::Events, record.as_bytes(), 0, 0).unwrap();
        }
        d.finish().unwrap()
    }

    async fn plan(sql: &str) -> IncrementalSql {
        IncrementalSql::plan(sql, GAP, event_decoder().schema())
            .await
            .unwrap()
    }

    struct Fixture {
        sql: IncrementalSql,
        state: SessionState,
    }

    impl Fixture {
        async fn new(horizon_ms: i64) -> Self {
            let sql = plan(SQL).await;
            let state = SessionState::new(&sql, GAP, horizon_ms).unwrap();
            Self { sql, state }
        }

        async fn add(&mut self, events: &[(u32, &str, i64)]) {
            let states = self.sql.partial(batch(events)).await.unwrap();
            self.state.fold(&states).unwrap();
        }

        /// (viewer, start, last, n) of what `watermark` emits, sorted; then
        /// marks it written.
        async fn emit(&mut self, watermark: i64) -> Vec<(String, i64, Option<i64>, i64)> {
            let due = self.state.due(watermark).unwrap().states;
            let mut out = Vec::new();
            if due.num_rows() > 0 {
                for b in self.sql.finish(vec![due]).await.unwrap() {
                    let start = b.column(0).as_primitive::<Int64Type>();
                    let viewer = b.column(1).as_string::<i32>();
                    let last = b.column(3).as_primitive::<Int64Type>();
                    let n = b.column(4).as_primitive::<Int64Type>();
                    for i in 0..b.num_rows() {
                        let last = last.is_valid(i).then(|| last.value(i));
                        out.push((viewer.value(i).to_owned(), start.value(i), last, n.value(i)));
                    }
                }
            }
            out.sort();
            self.state.emitted_at(watermark);
            out
        }
    }

    #[tokio::test]
    async fn sessions_split_on_silence_and_close_a_gap_after_their_last_event() {
        let mut f = Fixture::new(60_000).await;
        // a: 0, 10 s, 39.999 s (within the gap), then 70 s (a silence of 30 s).
        f.add(&[(1, "a", 0), (2, "a", 10_000), (3, "b", 5_000)])
            .await;
        f.add(&[(4, "a", 39_999), (5, "a", 70_000)]).await;
        assert_eq!(f.state.sessions(), 3);
        assert_eq!(f.emit(34_999).await, vec![]);
        assert_eq!(
            f.emit(35_000).await,
            vec![("b".into(), 5_000, Some(5_000), 1)]
        );
        assert_eq!(f.emit(69_998).await, vec![]);
        assert_eq!(f.emit(69_999).await, vec![("a".into(), 0, Some(39_999), 3)]);
        assert_eq!(f.emit(99_999).await, vec![]);
        assert_eq!(
            f.emit(100_000).await,
            vec![("a".into(), 70_000, Some(70_000), 1)]
        );
    }

    #[tokio::test]
    async fn late_events_correct_emitted_sessions_and_retract_moved_starts() {
        let mut f = Fixture::new(60_000).await;
        f.add(&[(1, "a", 10_000), (2, "a", 20_000), (3, "a", 60_000)])
            .await;
        assert_eq!(
            f.emit(55_000).await,
            vec![("a".into(), 10_000, Some(20_000), 2)]
        );
        // Within the session: re-emitted with more events.
        f.add(&[(4, "a", 15_000)]).await;
        assert_eq!(
            f.emit(55_000).await,
            vec![("a".into(), 10_000, Some(20_000), 3)]
        );
        // Before its start: the row under 10 s is retracted (no events).
        f.add(&[(5, "a", 1_000)]).await;
        assert_eq!(
            f.emit(55_000).await,
            vec![
                ("a".into(), 1_000, Some(20_000), 4),
                ("a".into(), 10_000, None, 0)
            ]
        );
        // Bridging the emitted session and the open one at 60 s joins them.
        f.add(&[(6, "a", 40_000)]).await;
        assert_eq!(f.emit(89_999).await, vec![]);
        assert_eq!(
            f.emit(90_000).await,
            vec![("a".into(), 1_000, Some(60_000), 6)]
        );
        // Beyond the horizon (closed at 90 s, kept until 150 s): dropped.
        assert_eq!(f.emit(150_000).await, vec![]);
        assert_eq!(f.state.sessions(), 0);
        f.add(&[(7, "a", 59_000)]).await;
        assert_eq!((f.state.sessions(), f.state.late_dropped()), (0, 1));
    }

    #[tokio::test]
    async fn restored_sessions_retract_starts_they_may_have_emitted() {
        let mut f = Fixture::new(60_000).await;
        f.add(&[(1, "a", 10_000), (2, "b", 10_000)]).await;
        let saved = f.state.checkpoint_batch().unwrap();
        let mut g = Fixture::new(60_000).await;
        g.state.restore(&saved, None).unwrap();
        assert_eq!(g.state.sessions(), 2);
        // The first run may have emitted a's session at 10 s before it died.
        g.add(&[(3, "a", 5_000), (4, "b", 12_000)]).await;
        assert_eq!(
            g.emit(50_000).await,
            vec![
                ("a".into(), 5_000, Some(10_000), 2),
                ("a".into(), 10_000, None, 0),
                ("b".into(), 10_000, Some(12_000), 2),
            ]
        );
    }

    #[tokio::test]
    async fn sessions_shown_after_the_checkpoint_retract_starts_the_replay_moves() {
        let mut f = Fixture::new(60_000).await;
        let saved = f.state.checkpoint_batch().unwrap();
        f.add(&[(1, "a", 10_000), (2, "b", 10_000), (3, "c", 20_000)])
            .await;
        // The first run wrote these rows, then died before its next checkpoint.
        let shown = f.state.due(50_000).unwrap().shown;
        let mut g = Fixture::new(60_000).await;
        g.state.restore(&saved, None).unwrap();
        g.state.restore_shown(&shown).unwrap();
        assert_eq!(g.state.sessions(), 3);
        // Journaled bounds alone are no rows, even past their close.
        assert_eq!(g.emit(50_000).await, vec![]);
        // The replay reads a's event of 5 s, which the first run got later,
        // before the watermark closes the session; c's event is not read yet.
        g.add(&[(1, "a", 10_000), (3, "a", 5_000), (2, "b", 10_000)])
            .await;
        assert_eq!(
            g.emit(50_000).await,
            vec![
                ("a".into(), 5_000, Some(10_000), 2),
                ("a".into(), 10_000, None, 0),
                ("b".into(), 10_000, Some(10_000), 1),
            ]
        );
        g.add(&[(4, "c", 20_000)]).await;
        assert_eq!(
            g.emit(50_000).await,
            vec![("c".into(), 20_000, Some(20_000), 1)]
        );
        assert_eq!(g.state.late_dropped(), 0);
    }

    #[tokio::test]
    async fn text_minimum_and_maximum_merge_across_batches_and_checkpoints() {
        let sql = plan(
            "SELECT window_start, viewer_id, min(ts), max(ts), min(session_id) AS first, \
             max(session_id) AS last FROM window_events GROUP BY window_start, viewer_id",
        )
        .await;
        let mut state = SessionState::new(&sql, GAP, 60_000).unwrap();
        let record = |id: u32, ts: i64, session: &str| {
            format!(
                r#"{{"schema_version":1,"received_ms":0,"events":[{{"event_id":"00000000-0000-4000-8000-{id:012}",
                "ts":{ts},"stream_id":"s","type":"player","event":"heartbeat","session_id":"{session}","viewer_id":"v","bitrate_kbps":1,"buffer_ms":1,"played_ms":1}}]}}"#
            )
        };
        for (id, ts, session) in [(1, 0, "m"), (2, 1_000, "c"), (3, 2_000, "x")] {
            let mut d = event_decoder();
            d.append(Payload::Events, record(id, ts, session).as_bytes(), 0, 0)
                .unwrap();
            state
                .fold(&sql.partial(d.finish().unwrap()).await.unwrap())
                .unwrap();
        }
        let mut restored = SessionState::new(&sql, GAP, 60_000).unwrap();
        restored
            .restore(&state.checkpoint_batch().unwrap(), None)
            .unwrap();
        for state in [state, restored] {
            let rows = sql
                .finish(vec![state.due(i64::MAX / 2).unwrap().states])
                .await
                .unwrap();
            let first = rows[0].column_by_name("first").unwrap().as_string::<i32>();
            let last = rows[0].column_by_name("last").unwrap().as_string::<i32>();
            assert_eq!((first.value(0), last.value(0)), ("c", "x"));
        }
    }

    #[tokio::test]
    async fn refuses_aggregates_that_do_not_merge_in_constant_space() {
        let distinct = "SELECT window_start, viewer_id, min(ts), max(ts), \
                        count(DISTINCT stream_id), count(DISTINCT session_id) \
                        FROM window_events GROUP BY window_start, viewer_id";
        let sql = plan(distinct).await;
        let err = SessionState::new(&sql, GAP, 0).err().unwrap().to_string();
        assert!(err.contains("is DISTINCT"), "{err}");
        let unbounded = "SELECT window_start, viewer_id, count(*) FROM window_events GROUP BY window_start, viewer_id";
        let sql = plan(unbounded).await;
        let err = SessionState::new(&sql, GAP, 0).err().unwrap().to_string();
        assert!(err.contains("min(ts) and max(ts)"), "{err}");
    }
}
