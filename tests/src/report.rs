//! Rows in ClickHouse against the recomputation, by key, so a failing test
//! says how they differ: rows lost, counted twice, wrong or unexpected.

use std::collections::BTreeMap;
use std::fmt;

use livepulse_sql::{EngagementRow, ViewerSessionRow};

/// How the streaming rows differ from the recomputation.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Expected rows that are missing or hold fewer events.
    pub lost: usize,
    /// Rows holding more events than the recomputation.
    pub double_counted: usize,
    /// Rows with the right event count but another difference.
    pub wrong: usize,
    /// Rows the recomputation does not have.
    pub unexpected: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lost {}, double-counted {}, wrong {}, unexpected {}",
            self.lost, self.double_counted, self.wrong, self.unexpected
        )
    }
}

/// A window row's key: (window seconds, stream, window start).
pub type WindowKey = (u32, String, u32);
/// A viewer session's key: (stream, viewer, session start ms).
pub type SessionKey = (String, String, i64);

/// Compares rows by key; `events` gives a row's event count.
pub fn report<K: Ord, R: PartialEq>(
    expected: &BTreeMap<K, R>,
    actual: &BTreeMap<K, R>,
    events: fn(&R) -> u64,
) -> Report {
    let mut r = Report::default();
    for (key, want) in expected {
        match actual.get(key) {
            None => r.lost += 1,
            Some(got) if events(got) < events(want) => r.lost += 1,
            Some(got) if events(got) > events(want) => r.double_counted += 1,
            Some(got) if got != want => r.wrong += 1,
            Some(_) => {}
        }
    }
    r.unexpected = actual.keys().filter(|k| !expected.contains_key(*k)).count();
    r
}

/// The keys (at most `limit`) where `actual` differs from `expected`, each
/// with both rows, for a failing test to print.
pub fn mismatches<K: Ord + fmt::Debug, R: PartialEq + fmt::Debug>(
    expected: &BTreeMap<K, R>,
    actual: &BTreeMap<K, R>,
    limit: usize,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&K> = expected.keys().chain(actual.keys()).collect();
    keys.into_iter()
        .filter(|k| expected.get(*k) != actual.get(*k))
        .take(limit)
        .map(|k| {
            format!(
                "{k:?}: expected {:?}, got {:?}",
                expected.get(k),
                actual.get(k)
            )
        })
        .collect()
}

/// Window rows by [`WindowKey`].
pub fn keyed_windows(rows: Vec<EngagementRow>) -> BTreeMap<WindowKey, EngagementRow> {
    rows.into_iter()
        .map(|row| {
            (
                (row.window_seconds, row.stream_id.clone(), row.window_start),
                row,
            )
        })
        .collect()
}

/// Viewer sessions by [`SessionKey`].
pub fn keyed_sessions(rows: Vec<ViewerSessionRow>) -> BTreeMap<SessionKey, ViewerSessionRow> {
    rows.into_iter()
        .map(|row| {
            let key = (
                row.stream_id.clone(),
                row.viewer_id.clone(),
                row.session_start_ms,
            );
            (key, row)
        })
        .collect()
}
