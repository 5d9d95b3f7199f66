//! The migrator, the tables it creates and the row types, against a real
//! ClickHouse 18.16.

mod common;

use common::{DATABASE, insert, server};
use livepulse_contract::tables::{
    self, EVENTS, PLAYBACK_REQUESTS, QOE_MINUTES, QOE_VIEW_MINUTES, QOE_VIEWS, SCHEMA_MIGRATIONS,
    STREAM_ENGAGEMENT, VIEWER_SESSIONS,
};
use livepulse_sql::{
    AppliedMigration, EngagementRow, EventRow, MIGRATIONS, MigrateError, Migration,
    PlaybackRequestRow, QoeMinuteRow, QoeViewRow, ViewerSessionRow, migrate, migrate_with,
};

#[derive(Debug, PartialEq, clickhouse::Row, serde::Deserialize)]
struct Record {
    version: u32,
    name: String,
    checksum: String,
}

async fn records(client: &clickhouse::Client) -> Vec<Record> {
    client
        .query("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        .fetch_all()
        .await
        .unwrap()
}

/// `(name, type)` of each column, in table order.
async fn columns(client: &clickhouse::Client, table: &str) -> Vec<(String, String)> {
    let mut cursor = client
        .query(&format!("DESCRIBE TABLE {table}"))
        .fetch_bytes("TabSeparated")
        .unwrap();
    let text = String::from_utf8(cursor.collect().await.unwrap().to_vec()).unwrap();
    text.lines()
        .map(|line| {
            let mut fields = line.split('\t');
            (
                fields.next().unwrap().to_owned(),
                fields.next().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn migrates_once_and_then_applies_nothing() {
    let (_dir, _ch, cfg) = server().await;

    let first = migrate(&cfg).await.unwrap();
    assert_eq!(first.database, DATABASE);
    assert_eq!(first.already_applied, 0);
    assert_eq!(
        first.applied,
        vec![
            AppliedMigration {
                version: 1,
                name: "events".into(),
                statements: 1
            },
            AppliedMigration {
                version: 2,
                name: "stream_engagement".into(),
                statements: 1
            },
            AppliedMigration {
                version: 3,
                name: "viewer_sessions".into(),
                statements: 1
            },
            AppliedMigration {
                version: 4,
                name: "events_qoe_and_health".into(),
                statements: 6
            },
            AppliedMigration {
                version: 5,
                name: "playback_requests".into(),
                statements: 1
            },
            AppliedMigration {
                version: 6,
                name: "qoe_minutes".into(),
                statements: 1
            },
            AppliedMigration {
                version: 7,
                name: "qoe_views".into(),
                statements: 1
            },
            AppliedMigration {
                version: 8,
                name: "qoe_view_minutes".into(),
                statements: 1
            },
        ]
    );

    assert_eq!(
        first.to_string(),
        "ClickHouse database livepulse: applied 0001_events, 0002_stream_engagement, 0003_viewer_sessions, 0004_events_qoe_and_health, 0005_playback_requests, 0006_qoe_minutes, 0007_qoe_views, 0008_qoe_view_minutes (0 already applied)"
    );

    let second = migrate(&cfg).await.unwrap();
    assert_eq!(
        second.to_string(),
        "ClickHouse database livepulse: up to date (8 migrations applied earlier)"
    );
    assert!(second.applied.is_empty(), "{second:?}");
    assert_eq!(second.already_applied, MIGRATIONS.len());

    let client = cfg.client();
    let expected: Vec<Record> = MIGRATIONS
        .iter()
        .map(|m| Record {
            version: m.version,
            name: m.name.to_owned(),
            checksum: m.checksum(),
        })
        .collect();
    assert_eq!(records(&client).await, expected);
}

#[tokio::test]
async fn a_migration_that_stopped_half_way_is_finished() {
    let (_dir, _ch, cfg) = server().await;
    let adds_columns = MIGRATIONS
        .iter()
        .position(|m| m.name == "events_qoe_and_health")
        .unwrap();
    migrate_with(&cfg, &MIGRATIONS[..adds_columns])
        .await
        .unwrap();
    // The first statement ran, then the migrator died before the rest.
    let first = MIGRATIONS[adds_columns].statements()[0];
    cfg.client().query_raw(first).execute().await.unwrap();
    let report = migrate(&cfg).await.unwrap();
    assert_eq!(report.applied[0].name, "events_qoe_and_health");
    let events = columns(&cfg.client(), EVENTS).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, <EventRow as clickhouse::Row>::COLUMN_NAMES);
}

#[tokio::test]
async fn creates_exactly_the_contract_tables_with_the_row_columns() {
    let (_dir, _ch, cfg) = server().await;
    migrate(&cfg).await.unwrap();
    let client = cfg.client();

    let created: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = ? ORDER BY name")
        .bind(DATABASE)
        .fetch_all()
        .await
        .unwrap();
    let mut expected: Vec<String> = tables::ALL.iter().map(|t| t.to_string()).collect();
    expected.sort();
    assert_eq!(created, expected);

    let events = columns(&client, EVENTS).await;
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, <EventRow as clickhouse::Row>::COLUMN_NAMES);
    let types: Vec<&str> = events.iter().map(|(_, ty)| ty.as_str()).collect();
    let s = "Nullable(String)";
    let u = "Nullable(UInt32)";
    #[rustfmt::skip]
    let expected_types = [
        "String", "DateTime", "Int64", "Int64", "String", "String", "String",
        s, s, s, s, s, s, u, u, u, s, u, u, u, s, "Nullable(UInt8)", s, s, u, "Nullable(UInt64)", s, s, s,
        u, u, u, u, "Nullable(Float64)", u,
    ];
    assert_eq!(types, expected_types);

    let engagement = columns(&client, STREAM_ENGAGEMENT).await;
    let names: Vec<&str> = engagement.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, <EngagementRow as clickhouse::Row>::COLUMN_NAMES);
    let types: Vec<&str> = engagement.iter().map(|(_, ty)| ty.as_str()).collect();
    let mut expected_types = vec!["DateTime", "DateTime", "UInt32", "String"];
    expected_types.extend(["UInt64"; 12]);
    expected_types.extend(["Nullable(Float64)", "UInt64", "UInt64", "Int64"]);
    assert_eq!(types, expected_types);

    let sessions = columns(&client, VIEWER_SESSIONS).await;
    let names: Vec<&str> = sessions.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, <ViewerSessionRow as clickhouse::Row>::COLUMN_NAMES);
    let types: Vec<&str> = sessions.iter().map(|(_, ty)| ty.as_str()).collect();
    let mut expected_types = vec!["DateTime", "String", "String", "Int64", "Int64"];
    expected_types.extend(["UInt64"; 7]);
    expected_types.push("Int64");
    assert_eq!(types, expected_types);

    for (table, row_columns) in [
        (
            PLAYBACK_REQUESTS,
            <PlaybackRequestRow as clickhouse::Row>::COLUMN_NAMES,
        ),
        (QOE_MINUTES, <QoeMinuteRow as clickhouse::Row>::COLUMN_NAMES),
        (QOE_VIEWS, <QoeViewRow as clickhouse::Row>::COLUMN_NAMES),
    ] {
        let table_columns = columns(&client, table).await;
        let names: Vec<&str> = table_columns
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, row_columns, "{table}");
    }

    let migrations = columns(&client, SCHEMA_MIGRATIONS).await;
    let expected = [
        ("version", "UInt32"),
        ("name", "String"),
        ("checksum", "String"),
        ("applied_ms", "Int64"),
    ];
    assert_eq!(
        migrations,
        expected.map(|(n, t)| (n.to_owned(), t.to_owned()))
    );
}

#[tokio::test]
async fn rows_round_trip_through_the_tables() {
    let (_dir, _ch, cfg) = server().await;
    migrate(&cfg).await.unwrap();

    let full = EventRow {
        event_id: "6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10".into(),
        ts: 1_709_287_200,
        ts_ms: 1_709_287_200_123,
        received_ms: 1_709_287_200_456,
        stream_id: "s-ü".into(),
        event_type: "player".into(),
        event: "heartbeat".into(),
        session_id: Some("sess".into()),
        viewer_id: Some("viewer".into()),
        device: Some("tv".into()),
        player: Some("hls.js/1.7".into()),
        cdn: Some("cdn".into()),
        region: Some("eu-west".into()),
        startup_ms: Some(1),
        bitrate_kbps: Some(2),
        buffer_ms: Some(3),
        rendition: Some("720p".into()),
        dropped_frames: Some(4),
        played_ms: Some(u32::MAX),
        stall_ms: Some(6),
        code: Some("E".into()),
        fatal: Some(true),
        text: Some("tab\tnew\nline 'q' \"dq\" \\ ☃".into()),
        gift_id: Some("rose".into()),
        count: Some(7),
        value_cents: Some(u64::MAX),
        creator_id: Some("c".into()),
        title: Some("t".into()),
        category: Some("k".into()),
        previous_bitrate_kbps: Some(8),
        latency_ms: Some(9),
        upscale_pct: Some(10),
        segment_ms: Some(11),
        frame_rate: Some(29.97),
        keyframe_interval_ms: Some(12),
    };
    let sparse = EventRow {
        event_id: "e2".into(),
        ts: 1_709_287_201,
        ts_ms: 1_709_287_201_999,
        received_ms: -1,
        stream_id: "s-ü".into(),
        event_type: "chat".into(),
        event: "like".into(),
        fatal: Some(false),
        ..EventRow::default()
    };
    insert(&cfg, EVENTS, &[full.clone(), sparse.clone()]).await;
    let back: Vec<EventRow> = cfg
        .client()
        .query("SELECT * FROM events ORDER BY event_id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(back, vec![full, sparse]);

    let window = EngagementRow {
        window_start: 1_709_287_200,
        window_end: 1_709_287_260,
        window_seconds: 60,
        stream_id: "s1".into(),
        concurrent_viewers: 1,
        unique_viewers: 2,
        watch_ms: 3,
        chat_messages: 4,
        chatters: 5,
        likes: 6,
        gifts: 7,
        gift_value_cents: 8,
        follows: 9,
        subscriptions: 10,
        shares: 11,
        interactions: 12,
        interaction_rate: Some(0.125),
        events: 13,
        version: u64::MAX,
        emitted_ms: 1_709_287_265_000,
    };
    let empty = EngagementRow {
        stream_id: "s2".into(),
        interaction_rate: None,
        ..window.clone()
    };
    insert(&cfg, STREAM_ENGAGEMENT, &[window.clone(), empty.clone()]).await;
    let back: Vec<EngagementRow> = cfg
        .client()
        .query("SELECT * FROM stream_engagement ORDER BY stream_id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(back, vec![window, empty]);

    let session = ViewerSessionRow {
        session_start: 1_709_287_200,
        stream_id: "s1".into(),
        viewer_id: "v1".into(),
        session_start_ms: 1_709_287_200_123,
        last_event_ms: 1_709_287_260_456,
        duration_ms: 60_333,
        watch_ms: 60_000,
        chat_messages: 2,
        interactions: 3,
        gift_value_cents: 99,
        events: 9,
        version: 9,
        emitted_ms: 1_709_287_300_000,
    };
    insert(&cfg, VIEWER_SESSIONS, std::slice::from_ref(&session)).await;
    let back: Vec<ViewerSessionRow> = cfg
        .client()
        .query("SELECT * FROM viewer_sessions")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(back, vec![session]);

    let request = PlaybackRequestRow {
        request_id: "6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10".into(),
        ts: 1_709_287_200,
        ts_ms: 1_709_287_200_123,
        stream_id: "s1".into(),
        event_type: "request".into(),
        object_kind: "segment".into(),
        session_id: Some("sid".into()),
        rendition: Some("720p".into()),
        object: "seg4.m4s".into(),
        status: 200,
        bytes_sent: u64::MAX,
        complete: true,
        ttfb_us: Some(1),
        client_cohort: "203.0.113.0/24".into(),
        cmcd_br: Some(986),
        cmcd_su: Some(true),
        cmcd_pr: Some(1.5),
        cmcd_ec: Some("E1,E2".into()),
        cmcd_bsd: Some(7),
        ..PlaybackRequestRow::default()
    };
    insert(&cfg, PLAYBACK_REQUESTS, std::slice::from_ref(&request)).await;
    let back: Vec<PlaybackRequestRow> = cfg
        .client()
        .query("SELECT * FROM playback_requests")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(back, vec![request]);

    let minute = QoeMinuteRow {
        window_start: 1_709_287_200,
        window_end: 1_709_287_260,
        stream_id: "s1".into(),
        device: "tv".into(),
        views: 3,
        startup_p99_ms: Some(2_500.5),
        peak_bitrate_kbps: Some(u32::MAX),
        cmcd_peak_bitrate_kbps: Some(u64::MAX),
        events: 9,
        version: 9,
        emitted_ms: 1,
        ..QoeMinuteRow::default()
    };
    insert(&cfg, QOE_MINUTES, std::slice::from_ref(&minute)).await;
    let back: Vec<QoeMinuteRow> = cfg
        .client()
        .query("SELECT * FROM qoe_minutes")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(back, vec![minute]);

    let view = |session: &str, played: bool, startup_ms: Option<i64>| QoeViewRow {
        view_start: 1_709_287_210,
        stream_id: "s1".into(),
        session_id: session.into(),
        device: "tv".into(),
        first_event_ms: 1_709_287_210_000,
        last_event_ms: 1_709_287_290_000,
        played,
        exit_before_start: !played,
        startup_ms,
        startup_score: startup_ms.map(|_| 80.0),
        success_score: Some(if played { 100.0 } else { 50.0 }),
        events: 4,
        version: 4,
        ..QoeViewRow::default()
    };
    let views = [
        view("a", true, Some(1_000)),
        view("b", true, Some(3_000)),
        view("c", false, None),
    ];
    insert(&cfg, QOE_VIEWS, &views).await;
    let back: Vec<QoeViewRow> = cfg
        .client()
        .query("SELECT * FROM qoe_views ORDER BY session_id")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(back, views);
    // The view over them: one minute, three attempts, two plays; the
    // median of two startups is the upper one (quantileExact, no
    // interpolation).
    type Minute = (u64, u64, f64, Option<i64>, Option<f64>);
    let (attempts, plays, ebvs_pct, p50, success): Minute = cfg
        .client()
        .query(&format!(
            "SELECT attempts, plays, exit_before_start_pct, startup_p50_ms, success_score FROM {QOE_VIEW_MINUTES}"
        ))
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        (
            attempts,
            plays,
            (ebvs_pct * 1000.0).round(),
            p50,
            success.map(|s| (s * 1000.0).round())
        ),
        (3, 2, 33_333.0, Some(3_000), Some(83_333.0))
    );
}

const THINGS: Migration = Migration {
    version: 1,
    name: "things",
    sql: "CREATE TABLE IF NOT EXISTS things (a UInt8) ENGINE = MergeTree() ORDER BY a;\n",
};

#[tokio::test]
async fn an_edited_applied_migration_is_refused() {
    let (_dir, _ch, cfg) = server().await;
    migrate_with(&cfg, &[THINGS]).await.unwrap();

    let edited = Migration {
        sql: "CREATE TABLE IF NOT EXISTS things (a UInt8, b UInt8) ENGINE = MergeTree() ORDER BY a;\n",
        ..THINGS
    };
    let more = Migration {
        version: 2,
        name: "more",
        sql: "CREATE TABLE IF NOT EXISTS more (a UInt8) ENGINE = Memory",
    };
    let err = migrate_with(&cfg, &[edited, more]).await.unwrap_err();
    match &err {
        MigrateError::Edited {
            version: 1,
            name,
            recorded,
            current,
        } => {
            assert_eq!(name, "things");
            assert_eq!(recorded, &THINGS.checksum());
            assert_eq!(current, &edited.checksum());
        }
        other => panic!("expected Edited, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("migration 0001_things was edited after it was applied"),
        "{err}"
    );
    // Nothing after the check ran.
    let client = cfg.client();
    let tables: Vec<String> = client
        .query("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name")
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(tables, ["schema_migrations", "things"]);
    assert_eq!(records(&client).await.len(), 1);

    // A newer database than the binary is refused too.
    migrate_with(&cfg, &[THINGS, more]).await.unwrap();
    let err = migrate_with(&cfg, &[THINGS]).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::Unknown { version: 2, name } if name == "more"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_failed_migration_stays_unrecorded_and_is_retried_whole() {
    let (_dir, _ch, cfg) = server().await;
    let broken = Migration {
        version: 2,
        name: "two_tables",
        sql: "CREATE TABLE IF NOT EXISTS one (a UInt8) ENGINE = Memory;\nCREATE TABLE IF NOT EXISTS two (a NoSuchType) ENGINE = Memory;\n",
    };
    let err = migrate_with(&cfg, &[THINGS, broken]).await.unwrap_err();
    match &err {
        MigrateError::ClickHouse { action, .. } => {
            assert_eq!(action, "migration 0002_two_tables, statement 2")
        }
        other => panic!("expected a ClickHouse error, got {other:?}"),
    }
    let client = cfg.client();
    assert_eq!(
        records(&client)
            .await
            .iter()
            .map(|r| r.version)
            .collect::<Vec<_>>(),
        [1]
    );

    let fixed = Migration {
        sql: "CREATE TABLE IF NOT EXISTS one (a UInt8) ENGINE = Memory;\nCREATE TABLE IF NOT EXISTS two (a UInt8) ENGINE = Memory;\n",
        ..broken
    };
    let report = migrate_with(&cfg, &[THINGS, fixed]).await.unwrap();
    assert_eq!(
        report.applied,
        [AppliedMigration {
            version: 2,
            name: "two_tables".into(),
            statements: 2
        }]
    );
    assert_eq!(report.already_applied, 1);
    assert_eq!(
        records(&client)
            .await
            .iter()
            .map(|r| r.version)
            .collect::<Vec<_>>(),
        [1, 2]
    );
}

#[tokio::test]
async fn an_out_of_order_list_is_refused_before_connecting() {
    let cfg = livepulse_connectors::clickhouse::ClickHouseConfig {
        url: "http://127.0.0.1:9".into(),
        database: DATABASE.into(),
        user: "nobody".into(),
        password: String::new(),
    };
    let two = Migration {
        version: 2,
        ..THINGS
    };
    let err = migrate_with(&cfg, &[two, THINGS]).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::OutOfOrder { version: 1, .. }),
        "{err:?}"
    );
    let bad = livepulse_connectors::clickhouse::ClickHouseConfig {
        database: "no-dashes".into(),
        ..cfg
    };
    assert!(matches!(
        migrate(&bad).await.unwrap_err(),
        MigrateError::Config(_)
    ));
}
