//! Sending an audience to a collector in real time.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::{Audience, ClientError, CollectorClient};

/// How often [`drive`] sends what became due.
pub const DRIVE_INTERVAL: Duration = Duration::from_millis(200);
/// How often [`drive`] logs its totals.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Maps simulated time onto the wall clock: epoch ms at its start plus a
/// monotonic elapsed time, so a wall-clock step cannot reorder sends.
#[derive(Debug, Clone, Copy)]
pub struct RealtimeClock {
    origin: Instant,
    origin_ms: i64,
}

impl RealtimeClock {
    /// A clock starting now.
    pub fn start() -> Self {
        Self {
            origin: Instant::now(),
            origin_ms: livepulse_contract::now_ms(),
        }
    }

    /// Epoch ms when the clock started: the audience's `start_ms`.
    pub fn start_ms(&self) -> i64 {
        self.origin_ms
    }

    /// Epoch ms now.
    pub fn now_ms(&self) -> i64 {
        self.origin_ms + self.origin.elapsed().as_millis() as i64
    }
}

/// What a [`drive`] run sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriveTotals {
    /// Events put into batches (duplicates included).
    pub sent: u64,
    /// Events the collector accepted.
    pub accepted: u64,
    /// Events the collector rejected.
    pub rejected: u64,
    /// Events of batches that got no answer (collector down or busy); lost.
    pub failed: u64,
}

impl DriveTotals {
    fn log(&self, what: &str) {
        tracing::info!(
            sent = self.sent,
            accepted = self.accepted,
            rejected = self.rejected,
            failed = self.failed,
            "simulator {what}"
        );
    }
}

/// Sends `audience` to the collector as its events fall due on `clock`: every
/// [`DRIVE_INTERVAL`] the due events go out in batches of up to
/// `batch_size`, until `stop` turns true (or its sender is dropped).
///
/// Build the audience with `start_ms = clock.start_ms()` so `ts` stays near
/// the wall clock. A batch that finds the collector down or busy is logged,
/// counted as failed and dropped; the run goes on. An answer no later
/// attempt can change (bad write key, wrong URL) ends the run with the error.
pub async fn drive(
    client: &CollectorClient,
    audience: &mut Audience,
    clock: &RealtimeClock,
    batch_size: usize,
    mut stop: watch::Receiver<bool>,
) -> Result<DriveTotals, ClientError> {
    let batch_size = batch_size.max(1);
    let mut totals = DriveTotals::default();
    let mut ticker = tokio::time::interval(DRIVE_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_report = Instant::now();
    tracing::info!(
        endpoint = client.endpoint(),
        batch_size,
        "simulator sending"
    );
    'run: loop {
        tokio::select! {
            _ = ticker.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
        if *stop.borrow() {
            break;
        }
        let due = audience.events_until(clock.now_ms());
        for batch in due.chunks(batch_size) {
            if *stop.borrow() {
                break 'run;
            }
            let n = batch.len() as u64;
            totals.sent += n;
            match client.send(batch).await {
                Ok(outcome) => {
                    totals.accepted += outcome.accepted as u64;
                    totals.rejected += outcome.rejected.len() as u64;
                    if let Some(first) = outcome.rejected.first() {
                        tracing::warn!(
                            rejected = outcome.rejected.len(),
                            code = %first.code,
                            reason = %first.reason,
                            "collector rejected events"
                        );
                    }
                }
                Err(error) if error.is_transient() => {
                    totals.failed += n;
                    tracing::warn!(%error, events = n, "batch not delivered");
                }
                Err(error) => return Err(error),
            }
        }
        if last_report.elapsed() >= REPORT_INTERVAL {
            last_report = Instant::now();
            totals.log("progress");
        }
    }
    totals.log("stopped");
    Ok(totals)
}
