//! Memory of the engagement job's state with many viewer sessions open.
//!
//! Every session sends two heartbeats 10 s apart, spread over 20 s of event
//! time, so all of them are open at the end (the session gap is 30 s). The
//! state's own accounting (hash tables, slots, Arrow buffers) is printed per
//! part, beside the process's resident memory before and after and its peak.

use std::borrow::Cow;
use std::time::Instant;

use anyhow::{Result, ensure};
use livepulse_contract::record::Payload;
use livepulse_contract::{Event, EventBatch, Family, Kind, SCHEMA_VERSION};
use livepulse_pipelines::PipelineConfig;
use livepulse_pipelines::jobs::engagement::Engagement;
use livepulse_pipelines::runtime::processor::{Lateness, Processor};
use livepulse_pipelines::sinks::row_binary::RowBinary;

use super::memory_status;
use super::replay::flush;

const START_MS: i64 = 1_700_000_000_000;
const STREAMS: usize = 1_000;
const EVENTS_PER_RECORD: usize = 64;
const RECORDS_PER_BATCH: usize = 64;

/// Opens `sessions` viewer sessions and prints what their state takes.
pub(super) async fn run(config: &PipelineConfig, sessions: usize) -> Result<()> {
    let mut processor = Processor::new(Engagement, Lateness::from(config)).await?;
    let rss_before = memory_status("VmRSS")?;
    let started = Instant::now();
    let mut offset = 0i64;
    let mut raw = RowBinary::default();
    for heartbeat in 0..2 {
        let viewers: Vec<usize> = (0..sessions).collect();
        for (n, chunk) in viewers.chunks(EVENTS_PER_RECORD).enumerate() {
            let events: Vec<Event<'_>> = chunk
                .iter()
                .map(|v| heartbeat_event(*v, heartbeat, sessions))
                .collect();
            let record = serde_json::to_vec(&EventBatch {
                schema_version: SCHEMA_VERSION,
                received_ms: START_MS,
                events,
            })?;
            processor.read(Payload::Events, &record, 0, offset)?;
            offset += 1;
            if (n + 1) % RECORDS_PER_BATCH == 0 {
                flush(&mut processor, &mut raw, None).await?;
            }
        }
    }
    flush(&mut processor, &mut raw, None).await?;
    let memory = processor.memory();
    let (rss_after, peak) = (memory_status("VmRSS")?, memory_status("VmHWM")?);
    ensure!(
        memory.sessions == sessions,
        "expected {sessions} open sessions, the state holds {}",
        memory.sessions
    );
    let per_session = |bytes: usize| bytes as f64 / sessions as f64;
    println!(
        "{sessions} viewer sessions open ({} events in {:.1} s)",
        2 * sessions,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  session state:     {:>6.1} MiB = {:>5.1} bytes per session",
        mib(memory.session_bytes),
        per_session(memory.session_bytes)
    );
    println!(
        "  dedup ids:         {:>6.1} MiB = {:>5.1} bytes per session ({} ids)",
        mib(memory.event_id_bytes),
        per_session(memory.event_id_bytes),
        memory.event_ids
    );
    println!(
        "  window panes:      {:>6.1} MiB = {:>5.1} bytes per session ({} panes)",
        mib(memory.pane_bytes),
        per_session(memory.pane_bytes),
        memory.panes
    );
    println!(
        "  resident:          {:.1} MiB before, {:.1} MiB after ({:.1} bytes per session), peak {:.1} MiB",
        mib(rss_before),
        mib(rss_after),
        per_session(rss_after.saturating_sub(rss_before)),
        mib(peak)
    );
    Ok(())
}

/// Viewer `v`'s heartbeat number `n` (0 or 1), 10 s apart; viewers' first
/// heartbeats are spread over 10 s.
fn heartbeat_event(v: usize, n: usize, sessions: usize) -> Event<'static> {
    let spread = (v as i64 * 10_000) / sessions as i64;
    Event {
        event_id: Cow::Owned(uuid::Uuid::from_u128((v * 2 + n) as u128 + 1).to_string()),
        ts: START_MS + n as i64 * 10_000 + spread,
        stream_id: Cow::Owned(format!("s{}", v % STREAMS)),
        family: Some(Family::Player),
        event: Some(Kind::Heartbeat),
        session_id: Some(Cow::Owned(format!("p{v}"))),
        viewer_id: Some(Cow::Owned(format!("v{v}"))),
        played_ms: Some(10_000),
        bitrate_kbps: Some(3_000),
        buffer_ms: Some(8_000),
        ..Event::default()
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
