//! Decoded events to rows of the raw `events` table.

use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use livepulse_sql::EventRow;

use crate::jobs::epoch_seconds;
use crate::runtime::columns::Columns;

/// One [`EventRow`] per event in `batch` (in the job's input schema).
pub fn event_rows(batch: &RecordBatch) -> Result<Vec<EventRow>, ArrowError> {
    let c = Columns::new(batch);
    let ts = c.i64("ts")?;
    let received = c.i64("received_ms")?;
    let mut event_id = c.string("event_id")?.into_iter();
    let mut stream_id = c.string("stream_id")?.into_iter();
    let mut event_type = c.string("event_type")?.into_iter();
    let mut event = c.string("event")?.into_iter();
    let [
        session_id,
        viewer_id,
        device,
        player,
        cdn,
        region,
        rendition,
        code,
        text,
        gift_id,
        creator_id,
        title,
        category,
    ] = [
        "session_id",
        "viewer_id",
        "device",
        "player",
        "cdn",
        "region",
        "rendition",
        "code",
        "text",
        "gift_id",
        "creator_id",
        "title",
        "category",
    ]
    .map(|name| c.opt_string(name).map(Vec::into_iter));
    let (mut session_id, mut viewer_id, mut device, mut player, mut cdn, mut region) =
        (session_id?, viewer_id?, device?, player?, cdn?, region?);
    let (mut rendition, mut code, mut text, mut gift_id, mut creator_id, mut title, mut category) = (
        rendition?,
        code?,
        text?,
        gift_id?,
        creator_id?,
        title?,
        category?,
    );
    let [
        startup_ms,
        bitrate_kbps,
        buffer_ms,
        dropped_frames,
        played_ms,
        stall_ms,
        count,
        previous_bitrate_kbps,
        latency_ms,
        upscale_pct,
        segment_ms,
        keyframe_interval_ms,
    ] = [
        "startup_ms",
        "bitrate_kbps",
        "buffer_ms",
        "dropped_frames",
        "played_ms",
        "stall_ms",
        "count",
        "previous_bitrate_kbps",
        "latency_ms",
        "upscale_pct",
        "segment_ms",
        "keyframe_interval_ms",
    ]
    .map(|name| c.opt_u32(name));
    let (startup_ms, bitrate_kbps, buffer_ms, dropped_frames) =
        (startup_ms?, bitrate_kbps?, buffer_ms?, dropped_frames?);
    let (played_ms, stall_ms, count) = (played_ms?, stall_ms?, count?);
    let (previous_bitrate_kbps, latency_ms, upscale_pct) =
        (previous_bitrate_kbps?, latency_ms?, upscale_pct?);
    let (segment_ms, keyframe_interval_ms) = (segment_ms?, keyframe_interval_ms?);
    let frame_rate = c.opt_f64("frame_rate")?;
    let fatal = c.opt_bool("fatal")?;
    let value_cents = c.opt_u64("value_cents")?;

    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let next = |it: &mut std::vec::IntoIter<Option<String>>| it.next().flatten();
        rows.push(EventRow {
            event_id: event_id.next().unwrap_or_default(),
            ts: epoch_seconds(ts[i]),
            ts_ms: ts[i],
            received_ms: received[i],
            stream_id: stream_id.next().unwrap_or_default(),
            event_type: event_type.next().unwrap_or_default(),
            event: event.next().unwrap_or_default(),
            session_id: next(&mut session_id),
            viewer_id: next(&mut viewer_id),
            device: next(&mut device),
            player: next(&mut player),
            cdn: next(&mut cdn),
            region: next(&mut region),
            startup_ms: startup_ms[i],
            bitrate_kbps: bitrate_kbps[i],
            buffer_ms: buffer_ms[i],
            rendition: next(&mut rendition),
            dropped_frames: dropped_frames[i],
            played_ms: played_ms[i],
            stall_ms: stall_ms[i],
            code: next(&mut code),
            fatal: fatal[i],
            text: next(&mut text),
            gift_id: next(&mut gift_id),
            count: count[i],
            value_cents: value_cents[i],
            creator_id: next(&mut creator_id),
            title: next(&mut title),
            category: next(&mut category),
            previous_bitrate_kbps: previous_bitrate_kbps[i],
            latency_ms: latency_ms[i],
            upscale_pct: upscale_pct[i],
            segment_ms: segment_ms[i],
            frame_rate: frame_rate[i],
            keyframe_interval_ms: keyframe_interval_ms[i],
        });
    }
    Ok(rows)
}
