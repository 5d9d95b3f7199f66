//! The engagement job: audience and interaction per stream, in 10 s
//! tumbling windows and 1 min windows sliding every 10 s, and each viewer's
//! sessions per stream (ended by 30 s of silence). The metric definitions
//! live in `engagement.sql` and `viewer_sessions.sql`.

use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use livepulse_contract::tables;
use livepulse_contract::topics::{self, Topic};
use livepulse_sql::{EngagementRow, ViewerSessionRow};

use super::{Job, SessionQuery, epoch_seconds};
use crate::runtime::columns::Columns;
use crate::runtime::window::WindowSpec;
use crate::sinks::row_binary::RawTable;

mod raw;

/// The engagement job.
#[derive(Debug, Clone, Default)]
pub struct Engagement;

impl Job for Engagement {
    type Row = EngagementRow;

    fn name(&self) -> &'static str {
        "engagement"
    }

    fn topics(&self) -> Vec<Topic> {
        vec![
            topics::PLAYER_EVENTS,
            topics::CHAT_EVENTS,
            topics::STREAM_EVENTS,
        ]
    }

    fn raw_table(&self) -> &'static RawTable {
        &raw::EVENTS
    }

    fn windows(&self) -> &'static [&'static str] {
        &[
            "tumble(interval '10 seconds')",
            "hop(interval '10 seconds', interval '1 minute')",
        ]
    }

    fn sql(&self) -> &str {
        include_str!("engagement.sql")
    }

    fn table(&self) -> &'static str {
        tables::STREAM_ENGAGEMENT
    }

    type SessionRow = ViewerSessionRow;

    fn sessions(&self) -> Option<SessionQuery> {
        Some(SessionQuery {
            window: "session(interval '30 seconds')",
            sql: include_str!("viewer_sessions.sql"),
            table: tables::VIEWER_SESSIONS,
        })
    }

    fn session_rows(
        &self,
        result: &[RecordBatch],
        emitted_ms: i64,
    ) -> Result<Vec<ViewerSessionRow>, ArrowError> {
        let mut rows = Vec::new();
        for batch in result {
            let c = Columns::new(batch);
            let starts = c.i64("window_start")?;
            let streams = c.string("stream_id")?;
            let viewers = c.string("viewer_id")?;
            let last_events = c.opt_i64("last_event_ms")?;
            let [watch, messages, interactions, value, events] = [
                "watch_ms",
                "chat_messages",
                "interactions",
                "gift_value_cents",
                "events",
            ]
            .map(|name| c.u64(name));
            let (watch, messages, interactions, value, events) =
                (watch?, messages?, interactions?, value?, events?);
            for (i, (stream_id, viewer_id)) in streams.into_iter().zip(viewers).enumerate() {
                let (start, last) = (starts[i], last_events[i].unwrap_or(starts[i]));
                rows.push(ViewerSessionRow {
                    session_start: epoch_seconds(start),
                    stream_id,
                    viewer_id,
                    session_start_ms: start,
                    last_event_ms: last,
                    duration_ms: u64::try_from(last - start).unwrap_or(0),
                    watch_ms: watch[i],
                    chat_messages: messages[i],
                    interactions: interactions[i],
                    gift_value_cents: value[i],
                    events: events[i],
                    // A retraction (no events) outranks every row of its start.
                    version: if events[i] == 0 { u64::MAX } else { events[i] },
                    emitted_ms,
                });
            }
        }
        Ok(rows)
    }

    fn rows(
        &self,
        result: &[RecordBatch],
        window: WindowSpec,
        emitted_ms: i64,
    ) -> Result<Vec<EngagementRow>, ArrowError> {
        let mut rows = Vec::new();
        for batch in result {
            let c = Columns::new(batch);
            let starts = c.i64("window_start")?;
            let streams = c.string("stream_id")?;
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
                events,
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
            .map(|name| c.u64(name));
            let (viewers, unique, watch, messages, chatters) =
                (viewers?, unique?, watch?, messages?, chatters?);
            let (likes, gifts, value, follows, subs, shares) =
                (likes?, gifts?, value?, follows?, subs?, shares?);
            let (interactions, events) = (interactions?, events?);
            let rates = c.opt_f64("interaction_rate")?;
            for (i, (start, stream_id)) in starts.into_iter().zip(streams).enumerate() {
                rows.push(EngagementRow {
                    window_start: epoch_seconds(start),
                    window_end: epoch_seconds(start + window.width_ms()),
                    window_seconds: u32::try_from(window.width_ms() / 1_000).unwrap_or(u32::MAX),
                    stream_id,
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
                    interaction_rate: rates[i],
                    events: events[i],
                    // More events means a more complete window: a late
                    // correction or a fuller replay wins in ClickHouse.
                    version: events[i],
                    emitted_ms,
                });
            }
        }
        Ok(rows)
    }
}
