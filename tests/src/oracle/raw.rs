//! The raw events table as the events say it should be, field by field.

use std::collections::BTreeMap;

use livepulse_contract::Event;
use livepulse_sql::EventRow;

/// One row per distinct `event_id` (duplicates are resends of the same
/// event), sorted by `event_id`, with `received_ms` 0 (the collector's).
pub fn event_rows(events: &[Event<'_>]) -> Vec<EventRow> {
    let text = |v: &Option<std::borrow::Cow<'_, str>>| v.as_deref().map(str::to_owned);
    let by_id: BTreeMap<&str, &Event<'_>> =
        events.iter().map(|e| (e.event_id.as_ref(), e)).collect();
    by_id
        .into_values()
        .map(|e| EventRow {
            event_id: e.event_id.to_string(),
            ts: u32::try_from(e.ts.div_euclid(1_000)).unwrap_or(0),
            ts_ms: e.ts,
            received_ms: 0,
            stream_id: e.stream_id.to_string(),
            event_type: e.family.map(|f| f.as_str().to_owned()).unwrap_or_default(),
            event: e.event.map(|k| k.as_str().to_owned()).unwrap_or_default(),
            session_id: text(&e.session_id),
            viewer_id: text(&e.viewer_id),
            device: text(&e.device),
            player: text(&e.player),
            cdn: text(&e.cdn),
            region: text(&e.region),
            startup_ms: e.startup_ms,
            bitrate_kbps: e.bitrate_kbps,
            buffer_ms: e.buffer_ms,
            rendition: text(&e.rendition),
            dropped_frames: e.dropped_frames,
            played_ms: e.played_ms,
            stall_ms: e.stall_ms,
            code: text(&e.code),
            fatal: e.fatal,
            text: text(&e.text),
            gift_id: text(&e.gift_id),
            count: e.count,
            value_cents: e.value_cents,
            creator_id: text(&e.creator_id),
            title: text(&e.title),
            category: text(&e.category),
            previous_bitrate_kbps: e.previous_bitrate_kbps,
            latency_ms: e.latency_ms,
            upscale_pct: e.upscale_pct,
            segment_ms: e.segment_ms,
            frame_rate: e.frame_rate,
            keyframe_interval_ms: e.keyframe_interval_ms,
        })
        .collect()
}
