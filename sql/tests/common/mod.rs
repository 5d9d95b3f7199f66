//! Shared by the integration tests: a migrated ClickHouse server, the
//! hand-made sample data set and the parameters each analyst query is run
//! with.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use livepulse_connectors::clickhouse::ClickHouseConfig;
use livepulse_contract::tables::{EVENTS, STREAM_ENGAGEMENT};
use livepulse_embedded::clickhouse::{Credentials, LocalClickHouse};
use livepulse_sql::{AnalystQuery, EngagementRow, EventRow};
use serde::Serialize;
use tempfile::TempDir;

pub const DATABASE: &str = "livepulse";

/// 2024-03-01 00:00:00 UTC.
pub const DAY1: u32 = 1_709_251_200;
pub const DAY2: u32 = DAY1 + 86_400;
/// 10:00 on day 1.
pub const TEN: u32 = DAY1 + 10 * 3600;

/// A private ClickHouse 18.16 and a config for its writer user.
pub async fn server() -> (TempDir, LocalClickHouse, ClickHouseConfig) {
    let (dir, ch) = livepulse_embedded::testing::clickhouse().await;
    let cfg = config(&ch, ch.writer());
    (dir, ch, cfg)
}

pub fn config(ch: &LocalClickHouse, who: &Credentials) -> ClickHouseConfig {
    ClickHouseConfig {
        url: ch.http_url(),
        database: DATABASE.to_owned(),
        user: who.user.clone(),
        password: who.password.clone(),
    }
}

pub async fn insert<T>(cfg: &ClickHouseConfig, table: &str, rows: &[T])
where
    T: clickhouse::RowOwned + clickhouse::RowWrite,
{
    let mut insert = cfg.client().insert::<T>(table).await.unwrap();
    for row in rows {
        insert.write(row).await.unwrap();
    }
    insert.end().await.unwrap();
}

/// One INSERT of the sample data set.
pub enum Batch {
    Events(Vec<EventRow>),
    Engagement(Vec<EngagementRow>),
}

impl Batch {
    pub fn table(&self) -> &'static str {
        match self {
            Batch::Events(_) => EVENTS,
            Batch::Engagement(_) => STREAM_ENGAGEMENT,
        }
    }

    /// The rows as JSONEachRow, for the chdb side.
    pub fn json_lines(&self) -> String {
        fn lines<T: Serialize>(rows: &[T]) -> String {
            rows.iter()
                .map(|r| serde_json::to_string(r).unwrap() + "\n")
                .collect()
        }
        match self {
            Batch::Events(rows) => lines(rows),
            Batch::Engagement(rows) => lines(rows),
        }
    }
}

pub async fn load(cfg: &ClickHouseConfig, batches: &[Batch]) {
    for batch in batches {
        match batch {
            Batch::Events(rows) => insert(cfg, EVENTS, rows).await,
            Batch::Engagement(rows) => insert(cfg, STREAM_ENGAGEMENT, rows).await,
        }
    }
}

fn event(
    id: &str,
    ts_ms: i64,
    stream: &str,
    family: &str,
    kind: &str,
    viewer: Option<&str>,
) -> EventRow {
    EventRow {
        event_id: id.to_owned(),
        ts: u32::try_from(ts_ms.div_euclid(1000)).unwrap(),
        ts_ms,
        received_ms: ts_ms + 150,
        stream_id: stream.to_owned(),
        event_type: family.to_owned(),
        event: kind.to_owned(),
        viewer_id: viewer.map(str::to_owned),
        ..EventRow::default()
    }
}

fn ms(seconds: u32) -> i64 {
    i64::from(seconds) * 1000
}

fn player(id: &str, at: u32, kind: &str) -> EventRow {
    EventRow {
        session_id: Some("p1".into()),
        device: Some("desktop".into()),
        player: Some("hls.js/1.7".into()),
        cdn: Some("cdn-a".into()),
        region: Some("eu-west".into()),
        ..event(id, ms(at), "s1", "player", kind, Some("v1"))
    }
}

fn message(id: &str, at: u32, stream: &str, viewer: &str, text: &str) -> EventRow {
    EventRow {
        text: Some(text.into()),
        ..event(id, ms(at), stream, "chat", "message", Some(viewer))
    }
}

fn gift(
    id: &str,
    at: u32,
    stream: &str,
    viewer: &str,
    gift: &str,
    count: u32,
    cents: u64,
) -> EventRow {
    EventRow {
        gift_id: Some(gift.into()),
        count: Some(count),
        value_cents: Some(cents),
        ..event(id, ms(at), stream, "chat", "gift", Some(viewer))
    }
}

fn stream(id: &str, at: u32, stream: &str, kind: &str, creator: &str) -> EventRow {
    EventRow {
        creator_id: Some(creator.into()),
        ..event(id, ms(at), stream, "stream", kind, None)
    }
}

/// The events: day 1 (2024-03-01) and day 2, one event on each side of
/// them, an event duplicated inside one INSERT (e10) and two replayed in a
/// second INSERT (e05, e06).
pub fn events() -> Vec<Batch> {
    let e05 = message("e05", TEN + 60, "s1", "v1", "again");
    let e06 = gift("e06", TEN + 70, "s1", "v2", "rose", 3, 300);
    let e10 = gift("e10", TEN + 3630, "s2", "v4", "rose", 1, 100);
    let first = vec![
        message("e19", DAY1 - 1, "s1", "v9", "too early"),
        EventRow {
            title: Some("Speedrun".into()),
            category: Some("gaming".into()),
            ..stream("e13", TEN - 60, "s1", "start", "c1")
        },
        player("e01", TEN, "start"),
        EventRow {
            ts_ms: ms(TEN + 1) + 250,
            startup_ms: Some(800),
            ..player("e02", TEN + 1, "playing")
        },
        message("e03", TEN + 5, "s1", "v1", "hi"),
        message(
            "e04",
            TEN + 6,
            "s1",
            "v2",
            "hello; it's \"quoted\"\ttabbed\nand ☃",
        ),
        EventRow {
            bitrate_kbps: Some(2500),
            buffer_ms: Some(4000),
            rendition: Some("720p".into()),
            dropped_frames: Some(0),
            played_ms: Some(10_000),
            ..player("e11", TEN + 11, "heartbeat")
        },
        EventRow {
            code: Some("E_NET".into()),
            fatal: Some(true),
            ..player("e12", TEN + 20, "error")
        },
        e05.clone(),
        e06.clone(),
        gift("e07", TEN + 120, "s1", "v3", "rocket", 1, 5000),
        event("e08", ms(TEN + 125), "s1", "chat", "like", Some("v3")),
        message("e09", TEN + 3600, "s2", "v4", "yo"),
        e10.clone(),
        e10,
        message("e14", DAY2 + 10, "s1", "v2", "day two"),
        gift("e15", DAY2 + 20, "s1", "v2", "rose", 2, 200),
        message("e18", DAY2 + 30, "s1", "v2", "still here"),
        message("e16", DAY2 + 300, "s2", "v5", "late"),
        stream("e17", DAY2 + 600, "s2", "end", "c2"),
        gift("e20", DAY2 + 86_400, "s2", "v4", "rose", 9, 999),
    ];
    vec![Batch::Events(first), Batch::Events(vec![e05, e06])]
}

fn window(stream: &str, start: u32, seconds: u32, viewers: u64, version: u64) -> EngagementRow {
    EngagementRow {
        window_start: start,
        window_end: start + seconds,
        window_seconds: seconds,
        stream_id: stream.to_owned(),
        concurrent_viewers: viewers,
        unique_viewers: viewers + 2,
        watch_ms: viewers * 50_000,
        chat_messages: 2,
        chatters: 2,
        likes: 1,
        gifts: 3,
        gift_value_cents: 300,
        follows: 1,
        subscriptions: 0,
        shares: 1,
        interactions: 8,
        interaction_rate: Some(8.0 / viewers as f64),
        events: 20,
        version,
        emitted_ms: i64::from(start + seconds) * 1000 + 5_000,
    }
}

/// Engagement windows: stream s1 on day 1 at 10:00-10:03 (60-s windows; the
/// 10:01 window re-emitted with a higher version in a later INSERT; 10-s
/// windows and another stream beside them), and live windows relative to
/// `now_minute` (the current minute) for `top_live_streams`.
pub fn engagement(now_minute: u32) -> Vec<Batch> {
    let first = vec![
        window("s1", TEN, 60, 10, 1),
        window("s1", TEN + 60, 60, 11, 1),
        EngagementRow {
            interaction_rate: None,
            concurrent_viewers: 0,
            ..window("s1", TEN + 120, 60, 9, 1)
        },
        window("s1", TEN + 180, 60, 40, 1),
        window("s1", TEN + 60, 10, 50, 1),
        window("s1", TEN + 70, 10, 51, 1),
        window("s2", TEN, 60, 99, 1),
        window("L1", now_minute - 180, 60, 200, 1),
        window("L1", now_minute - 120, 60, 120, 1),
        window("L1", now_minute - 60, 10, 5000, 1),
        window("L2", now_minute - 120, 60, 90, 1),
        window("L3", now_minute - 7200, 60, 999, 1),
    ];
    let reemitted = vec![
        EngagementRow {
            chat_messages: 5,
            chatters: 4,
            likes: 3,
            ..window("s1", TEN + 60, 60, 15, 2)
        },
        window("L1", now_minute - 180, 60, 150, 2),
        window("L2", now_minute - 120, 60, 130, 2),
    ];
    vec![Batch::Engagement(first), Batch::Engagement(reemitted)]
}

/// The whole sample data set, in INSERT order.
pub fn sample(now_minute: u32) -> Vec<Batch> {
    let mut batches = events();
    batches.extend(engagement(now_minute));
    batches
}

/// The start of the current minute, epoch seconds.
pub fn now_minute() -> u32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    u32::try_from(now / 60 * 60).unwrap()
}

/// A value bound to a `?`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Value {
    Str(&'static str),
    U32(u32),
}

/// The parameters each analyst query runs with against the sample data.
pub fn params(name: &str) -> Vec<Value> {
    use Value::{Str, U32};
    match name {
        "engagement_timeline" => vec![Str("s1"), U32(60), U32(TEN), U32(TEN + 180)],
        "top_live_streams" => vec![U32(60), U32(30), U32(10)],
        "chat_activity" => vec![U32(DAY1), U32(DAY2)],
        "top_chatters" => vec![Str("2024-03-01 00:00:00"), U32(DAY1 + 3 * 86_400), U32(2)],
        "gift_revenue_daily" | "daily_event_volume" => vec![Str("2024-03-01"), Str("2024-03-02")],
        other => {
            panic!("no sample parameters for query `{other}`: add them to tests/common/mod.rs")
        }
    }
}

/// `query` with its sample parameters bound.
pub fn bound(client: &clickhouse::Client, query: &AnalystQuery) -> clickhouse::query::Query {
    let values = params(query.name);
    assert_eq!(values.len(), query.params.len(), "{}", query.name);
    values
        .into_iter()
        .fold(client.query(query.sql), |q, value| q.bind(value))
}
