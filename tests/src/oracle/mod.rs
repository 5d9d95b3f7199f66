//! Batch recomputation of the jobs with Polars: the engagement job here,
//! the QoE job in [`qoe`].

pub mod qoe;
pub mod raw;

use std::collections::HashSet;

use livepulse_contract::{Event, Family, Kind};
use livepulse_sql::{EngagementRow, ViewerSessionRow};
use polars::prelude::*;

/// The columns of an engagement row that the streaming job and the batch
/// recomputation must agree on (everything but the emission time).
pub type EngagementKey = (u32, u32, String);

/// Every row of the engagement job as it is deployed (10 s tumbling, 1 min
/// sliding by 10 s), sorted by (window seconds, stream, window start).
pub fn engagement_job(events: &[Event<'_>]) -> PolarsResult<Vec<EngagementRow>> {
    let mut rows = engagement(events, 10, 10)?;
    rows.extend(engagement(events, 60, 10)?);
    rows.sort_by(|a, b| {
        (a.window_seconds, &a.stream_id, a.window_start).cmp(&(
            b.window_seconds,
            &b.stream_id,
            b.window_start,
        ))
    });
    Ok(rows)
}

/// Recomputes every (window, stream) row of the engagement job for windows
/// of `width_secs` starting every `slide_secs` (equal for tumbling windows),
/// from `events` as the collector accepted them (repeats of an `event_id`
/// count once). Rows come sorted by (stream, window start); `emitted_ms` is 0.
pub fn engagement(
    events: &[Event<'_>],
    width_secs: u32,
    slide_secs: u32,
) -> PolarsResult<Vec<EngagementRow>> {
    let (width_ms, slide_ms) = (i64::from(width_secs) * 1_000, i64::from(slide_secs) * 1_000);
    let mut seen = HashSet::new();
    // One copy of each event per window it falls in.
    let mut unique: Vec<&Event<'_>> = Vec::new();
    let mut window_starts: Vec<i64> = Vec::new();
    for e in events.iter().filter(|e| seen.insert(e.event_id.as_ref())) {
        let last = e.ts - e.ts.rem_euclid(slide_ms);
        let mut start = last;
        while start > e.ts - width_ms {
            unique.push(e);
            window_starts.push(start);
            start -= slide_ms;
        }
    }
    let frame = df!(
        "window_start_ms" => window_starts,
        "ts" => unique.iter().map(|e| e.ts).collect::<Vec<_>>(),
        "stream_id" => unique.iter().map(|e| e.stream_id.as_ref()).collect::<Vec<_>>(),
        "family" => unique.iter().map(|e| e.family.map(Family::as_str)).collect::<Vec<_>>(),
        "kind" => unique.iter().map(|e| e.event.map(Kind::as_str)).collect::<Vec<_>>(),
        "session_id" => unique.iter().map(|e| e.session_id.as_deref()).collect::<Vec<_>>(),
        "viewer_id" => unique.iter().map(|e| e.viewer_id.as_deref()).collect::<Vec<_>>(),
        "played_ms" => unique.iter().map(|e| e.played_ms.map(u64::from)).collect::<Vec<_>>(),
        "gift_count" => unique.iter().map(|e| e.count.map(u64::from)).collect::<Vec<_>>(),
        "value_cents" => unique.iter().map(|e| e.value_cents).collect::<Vec<_>>(),
    )?;
    let is = |column: &str, value: &str| col(column).eq(lit(value.to_owned()));
    let count_where =
        |condition: Expr, name: &str| condition.cast(DataType::UInt64).sum().alias(name);
    let distinct_where = |column: &str, condition: Expr, name: &str| {
        col(column)
            .filter(condition)
            .drop_nulls()
            .n_unique()
            .cast(DataType::UInt64)
            .alias(name)
    };
    let sum_where = |column: &str, condition: Expr, name: &str| {
        col(column)
            .filter(condition)
            .sum()
            .fill_null(lit(0u64))
            .cast(DataType::UInt64)
            .alias(name)
    };
    let result = frame
        .lazy()
        .group_by([col("window_start_ms"), col("stream_id")])
        .agg([
            distinct_where("session_id", is("family", "player"), "concurrent_viewers"),
            col("viewer_id")
                .drop_nulls()
                .n_unique()
                .cast(DataType::UInt64)
                .alias("unique_viewers"),
            col("played_ms")
                .sum()
                .fill_null(lit(0u64))
                .cast(DataType::UInt64)
                .alias("watch_ms"),
            count_where(is("kind", "message"), "chat_messages"),
            distinct_where("viewer_id", is("kind", "message"), "chatters"),
            count_where(is("family", "chat").and(is("kind", "like")), "likes"),
            sum_where("gift_count", is("kind", "gift"), "gifts"),
            sum_where("value_cents", is("kind", "gift"), "gift_value_cents"),
            count_where(is("kind", "follow"), "follows"),
            count_where(is("kind", "subscribe"), "subscriptions"),
            count_where(is("kind", "share"), "shares"),
            count_where(is("family", "chat"), "interactions"),
            len().cast(DataType::UInt64).alias("events"),
        ])
        .sort(
            ["stream_id", "window_start_ms"],
            SortMultipleOptions::default(),
        )
        .collect()?;

    let u64s = |name: &str| u64_column(&result, name);
    let starts = i64_column(&result, "window_start_ms")?;
    let streams = string_column(&result, "stream_id")?;
    let [
        viewers,
        unique,
        watch,
        messages,
        chatters,
        likes,
        gifts,
        value,
        follows,
        subs,
        shares,
        interactions,
        counts,
    ] = [
        "concurrent_viewers",
        "unique_viewers",
        "watch_ms",
        "chat_messages",
        "chatters",
        "likes",
        "gifts",
        "gift_value_cents",
        "follows",
        "subscriptions",
        "shares",
        "interactions",
        "events",
    ]
    .map(u64s);
    let (viewers, unique, watch, messages, chatters) =
        (viewers?, unique?, watch?, messages?, chatters?);
    let (likes, gifts, value, follows, subs, shares) =
        (likes?, gifts?, value?, follows?, subs?, shares?);
    let (interactions, counts) = (interactions?, counts?);

    Ok((0..result.height())
        .map(|i| {
            let start_s = u32::try_from(starts[i] / 1_000).unwrap_or(0);
            EngagementRow {
                window_start: start_s,
                window_end: start_s + width_secs,
                window_seconds: width_secs,
                stream_id: streams[i].clone(),
                concurrent_viewers: viewers[i],
                unique_viewers: unique[i],
                watch_ms: watch[i],
                chat_messages: messages[i],
                chatters: chatters[i],
                likes: likes[i],
                gifts: gifts[i],
                gift_value_cents: value[i],
                follows: follows[i],
                subscriptions: subs[i],
                shares: shares[i],
                interactions: interactions[i],
                interaction_rate: (viewers[i] > 0)
                    .then(|| interactions[i] as f64 / viewers[i] as f64),
                events: counts[i],
                version: counts[i],
                emitted_ms: 0,
            }
        })
        .collect())
}

/// The session gap of the engagement job's viewer sessions.
pub const SESSION_GAP_MS: i64 = 30_000;

/// Recomputes the engagement job's viewer sessions from `events` as the
/// collector accepted them (repeats of an `event_id` count once): per
/// (stream, viewer), runs of events with no silence of [`SESSION_GAP_MS`] or
/// longer. Rows come sorted by (stream, viewer, start); `emitted_ms` is 0.
pub fn viewer_sessions(events: &[Event<'_>]) -> PolarsResult<Vec<ViewerSessionRow>> {
    let mut seen = HashSet::new();
    let unique: Vec<&Event<'_>> = events
        .iter()
        .filter(|e| e.viewer_id.is_some() && seen.insert(e.event_id.as_ref()))
        .collect();
    let sorted = df!(
        "stream_id" => unique.iter().map(|e| e.stream_id.as_ref()).collect::<Vec<_>>(),
        "viewer_id" => unique.iter().map(|e| e.viewer_id.as_deref()).collect::<Vec<_>>(),
        "ts" => unique.iter().map(|e| e.ts).collect::<Vec<_>>(),
        "family" => unique.iter().map(|e| e.family.map(Family::as_str)).collect::<Vec<_>>(),
        "kind" => unique.iter().map(|e| e.event.map(Kind::as_str)).collect::<Vec<_>>(),
        "played_ms" => unique.iter().map(|e| e.played_ms.map(u64::from)).collect::<Vec<_>>(),
        "value_cents" => unique.iter().map(|e| e.value_cents).collect::<Vec<_>>(),
    )?
    .sort(
        ["stream_id", "viewer_id", "ts"],
        SortMultipleOptions::default(),
    )?;

    // Number the sessions: a new one starts at a new key or after a silence.
    let (streams, viewers, ts) = (
        sorted.column("stream_id")?.str()?,
        sorted.column("viewer_id")?.str()?,
        sorted.column("ts")?.i64()?,
    );
    let mut session = 0u64;
    let mut numbers = Vec::with_capacity(sorted.height());
    for i in 0..sorted.height() {
        if i > 0
            && (streams.get(i) != streams.get(i - 1)
                || viewers.get(i) != viewers.get(i - 1)
                || ts.get(i).unwrap_or(0) - ts.get(i - 1).unwrap_or(0) >= SESSION_GAP_MS)
        {
            session += 1;
        }
        numbers.push(session);
    }
    let mut numbered = sorted.clone();
    numbered.with_column(Column::new("session".into(), numbers))?;

    let is = |column: &str, value: &str| col(column).eq(lit(value.to_owned()));
    let result = numbered
        .lazy()
        .group_by([col("session")])
        .agg([
            col("stream_id").first(),
            col("viewer_id").first(),
            col("ts").min().alias("start"),
            col("ts").max().alias("last"),
            col("played_ms")
                .sum()
                .fill_null(lit(0u64))
                .cast(DataType::UInt64)
                .alias("watch_ms"),
            is("kind", "message")
                .cast(DataType::UInt64)
                .sum()
                .alias("chat_messages"),
            is("family", "chat")
                .cast(DataType::UInt64)
                .sum()
                .alias("interactions"),
            col("value_cents")
                .filter(is("kind", "gift"))
                .sum()
                .fill_null(lit(0u64))
                .cast(DataType::UInt64)
                .alias("gift_value_cents"),
            len().cast(DataType::UInt64).alias("events"),
        ])
        .sort(["session"], SortMultipleOptions::default())
        .collect()?;

    let u64s = |name: &str| u64_column(&result, name);
    let streams = string_column(&result, "stream_id")?;
    let viewers = string_column(&result, "viewer_id")?;
    let starts = i64_column(&result, "start")?;
    let lasts = i64_column(&result, "last")?;
    let (watch, messages, interactions) = (
        u64s("watch_ms")?,
        u64s("chat_messages")?,
        u64s("interactions")?,
    );
    let (value, counts) = (u64s("gift_value_cents")?, u64s("events")?);
    Ok((0..result.height())
        .map(|i| ViewerSessionRow {
            session_start: u32::try_from(starts[i].div_euclid(1_000)).unwrap_or(0),
            stream_id: streams[i].clone(),
            viewer_id: viewers[i].clone(),
            session_start_ms: starts[i],
            last_event_ms: lasts[i],
            duration_ms: u64::try_from(lasts[i] - starts[i]).unwrap_or(0),
            watch_ms: watch[i],
            chat_messages: messages[i],
            interactions: interactions[i],
            gift_value_cents: value[i],
            events: counts[i],
            version: counts[i],
            emitted_ms: 0,
        })
        .collect())
}

/// A UInt64 column of a result frame (nulls as 0).
pub(crate) fn u64_column(frame: &DataFrame, name: &str) -> PolarsResult<Vec<u64>> {
    Ok(frame
        .column(name)?
        .u64()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

/// An Int64 column of a result frame (nulls as 0).
pub(crate) fn i64_column(frame: &DataFrame, name: &str) -> PolarsResult<Vec<i64>> {
    Ok(frame
        .column(name)?
        .i64()?
        .iter()
        .map(|v| v.unwrap_or(0))
        .collect())
}

/// A string column of a result frame (nulls as "").
pub(crate) fn string_column(frame: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    Ok(frame
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or_default().to_owned())
        .collect())
}
