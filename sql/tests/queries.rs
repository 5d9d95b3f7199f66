//! Every analyst query against the hand-made sample data on a real
//! ClickHouse 18.16, as the writer and as the read-only analyst.

mod common;

use clickhouse::Row;
use common::{DAY1, TEN, bound, config, load, now_minute, sample, server};
use livepulse_sql::{QUERIES, migrate};
use serde::Deserialize;

#[derive(Debug, PartialEq, Row, Deserialize)]
struct Minute {
    minute: u32,
    peak_concurrent_viewers: u64,
    peak_unique_viewers: u64,
    watch_ms: u64,
    chat_messages: u64,
    peak_chatters: u64,
    likes: u64,
    gifts: u64,
    gift_value_cents: u64,
    follows: u64,
    subscriptions: u64,
    shares: u64,
    interactions: u64,
    events: u64,
}

/// The timeline's row for a minute whose window had `viewers` (see
/// `common::window`).
fn minute(minute: u32, viewers: u64) -> Minute {
    Minute {
        minute,
        peak_concurrent_viewers: viewers,
        peak_unique_viewers: viewers + 2,
        watch_ms: viewers * 50_000,
        chat_messages: 2,
        peak_chatters: 2,
        likes: 1,
        gifts: 3,
        gift_value_cents: 300,
        follows: 1,
        subscriptions: 0,
        shares: 1,
        interactions: 8,
        events: 20,
    }
}

const DAY1_DATE: u16 = (DAY1 / 86_400) as u16;

#[tokio::test]
async fn every_query_returns_the_expected_rows() {
    let (_dir, _ch, cfg) = server().await;
    migrate(&cfg).await.unwrap();
    let now = now_minute();
    load(&cfg, &sample(now)).await;
    let client = cfg.client();

    for query in QUERIES {
        let q = bound(&client, query);
        match query.name {
            "engagement_timeline" => {
                let rows: Vec<Minute> = q.fetch_all().await.unwrap();
                let expected = vec![
                    minute(TEN, 10),
                    // The re-emitted version (15 viewers, more chat), not the first (11); 10-s windows ignored.
                    Minute {
                        chat_messages: 5,
                        peak_chatters: 4,
                        likes: 3,
                        ..minute(TEN + 60, 15)
                    },
                    Minute {
                        peak_concurrent_viewers: 0,
                        ..minute(TEN + 120, 9)
                    },
                ];
                assert_eq!(rows, expected);
            }
            "top_live_streams" => {
                let rows: Vec<(String, u64, u64, u32)> = q.fetch_all().await.unwrap();
                // Latest versions only: L1's first window is 150 (not 200), L2's is 130 (not 90).
                let expected = vec![
                    ("L2".to_owned(), 130, 130, now - 120),
                    ("L1".to_owned(), 120, 150, now - 120),
                ];
                assert_eq!(rows, expected);
            }
            "chat_activity" => {
                let rows: Vec<(String, u64, u64, u64, f64)> = q.fetch_all().await.unwrap();
                // e05 arrived twice and counts once.
                let expected = vec![
                    ("s1".to_owned(), 3, 2, 1, 1.5),
                    ("s2".to_owned(), 1, 1, 0, 1.0),
                ];
                assert_eq!(rows, expected);
            }
            "top_chatters" => {
                let rows: Vec<(String, Option<String>, u64)> = q.fetch_all().await.unwrap();
                let row = |s: &str, v: &str, n| (s.to_owned(), Some(v.to_owned()), n);
                // Counting the replayed e05 twice would tie v1 with v2 and put v1 first.
                let expected = vec![
                    row("s1", "v2", 3),
                    row("s1", "v1", 2),
                    row("s2", "v4", 1),
                    row("s2", "v5", 1),
                ];
                assert_eq!(rows, expected);
            }
            "gift_revenue_daily" => {
                let rows: Vec<(u16, String, u64, u64, u64, u64)> = q.fetch_all().await.unwrap();
                // e06 (replayed) and e10 (twice in one INSERT) count once; e20 is after the range.
                let expected = vec![
                    (DAY1_DATE, "s1".to_owned(), 2, 4, 2, 5300),
                    (DAY1_DATE, "s2".to_owned(), 1, 1, 1, 100),
                    (DAY1_DATE + 1, "s1".to_owned(), 1, 2, 1, 200),
                ];
                assert_eq!(rows, expected);
            }
            "daily_event_volume" => {
                let rows: Vec<(u16, String, String, u64, u64)> = q.fetch_all().await.unwrap();
                let row = |day, family: &str, kind: &str, events, streams| {
                    (day, family.to_owned(), kind.to_owned(), events, streams)
                };
                let expected = vec![
                    row(DAY1_DATE, "chat", "gift", 3, 2),
                    row(DAY1_DATE, "chat", "like", 1, 1),
                    row(DAY1_DATE, "chat", "message", 4, 2),
                    row(DAY1_DATE, "player", "error", 1, 1),
                    row(DAY1_DATE, "player", "heartbeat", 1, 1),
                    row(DAY1_DATE, "player", "playing", 1, 1),
                    row(DAY1_DATE, "player", "start", 1, 1),
                    row(DAY1_DATE, "stream", "start", 1, 1),
                    row(DAY1_DATE + 1, "chat", "gift", 1, 1),
                    row(DAY1_DATE + 1, "chat", "message", 3, 2),
                    row(DAY1_DATE + 1, "stream", "end", 1, 1),
                ];
                assert_eq!(rows, expected);
            }
            other => panic!("query `{other}` has no expected rows in this test"),
        }
    }
}

#[tokio::test]
async fn the_analyst_can_query_but_not_write() {
    let (_dir, ch, cfg) = server().await;
    migrate(&cfg).await.unwrap();
    load(&cfg, &sample(now_minute())).await;
    let analyst = config(&ch, ch.analyst()).client();

    for query in QUERIES {
        let text = bound(&analyst, query)
            .fetch_bytes("TabSeparated")
            .unwrap()
            .collect()
            .await;
        let text = text.unwrap_or_else(|err| panic!("{} as analyst: {err}", query.name));
        assert!(!text.is_empty(), "{} returned nothing", query.name);
    }

    let err = analyst
        .query("INSERT INTO events (event_id, ts, ts_ms, received_ms, stream_id, event_type, event) VALUES ('x', 0, 0, 0, 's', 'chat', 'like')")
        .execute()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");
    let err = analyst
        .query("DROP TABLE events")
        .execute()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");
    let count: u64 = analyst
        .query("SELECT count() FROM events WHERE event_id = 'x'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(count, 0);
}
