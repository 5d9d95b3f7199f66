//! Crash injection for the crash-test harness: with
//! `LIVEPULSE_CRASHPOINT=<name>:<n>`, the process aborts (no unwinding, no
//! flushing: the same as `kill -9`) the `n`-th time it reaches the point
//! `name`. Points sit where a crash hurts most: between writing a
//! checkpoint's files and publishing it (`checkpoint`), and half-way through
//! a ClickHouse insert (`clickhouse_insert`). Unset, a point only reads a
//! cached `None`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the crash point.
pub const ENV: &str = "LIVEPULSE_CRASHPOINT";

static PLAN: LazyLock<Option<(String, u64)>> = LazyLock::new(|| {
    let value = std::env::var(ENV).ok()?;
    let (name, n) = value.rsplit_once(':')?;
    Some((name.to_owned(), n.parse().ok()?))
});
static HITS: AtomicU64 = AtomicU64::new(0);

/// Marks that the point `name` was reached.
pub fn reached(name: &str) {
    if let Some((planned, at)) = PLAN.as_ref()
        && planned == name
        && HITS.fetch_add(1, Ordering::Relaxed) + 1 == *at
    {
        tracing::error!(point = name, "crash point reached: aborting");
        std::process::abort();
    }
}
