//! The collector against a real tansu broker.

#[allow(dead_code)] // each test binary uses a different part of it
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use common::{
    Running, broker, chat_like, chat_message, config, consume_all, events_by_topic_and_stream,
    now_ms, player, stream_start,
};
use flate2::Compression;
use flate2::write::GzEncoder;
use livepulse_connectors::kafka::KafkaConfig;
use livepulse_contract::topics::{
    CHAT_EVENTS, PLAYER_EVENTS, STREAM_EVENTS, STREAM_PARTITIONS, partition_for,
};
use livepulse_ingest::collector::{CollectorConfig, ErrorResponse, IngestResponse, RejectedEvent};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn ndjson(events: &[Value]) -> Vec<u8> {
    events
        .iter()
        .map(|e| format!("{e}\n"))
        .collect::<String>()
        .into_bytes()
}

async fn ingest_answer(response: reqwest::Response) -> (u16, IngestResponse) {
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn error_answer(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: ErrorResponse = response.json().await.unwrap();
    (status, body.error)
}

fn key(topic: &str, stream: &str) -> (String, String) {
    (topic.to_owned(), stream.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_batch_lands_per_topic_and_partition_in_order() {
    let (_dir, _broker, kafka) = broker().await;
    let collector = Running::start(config(), &kafka).await;
    let sent = vec![
        stream_start("s1"),
        player("s1", "start"),
        chat_message("s2", "hello"),
        player("s1", "heartbeat"),
        chat_like("s1"),
        player("s2", "start"),
        chat_message("s2", "gg \"quoted\" 弹幕"),
        stream_start("s2"),
        player("s1", "heartbeat"),
    ];
    let before = now_ms();
    let answer = ingest_answer(collector.post(&sent).await).await;
    let after = now_ms();
    assert_eq!(
        answer,
        (
            200,
            IngestResponse {
                accepted: 9,
                rejected: vec![]
            }
        )
    );

    let records = consume_all(&kafka).await;
    // One record per (topic, partition): the request is small.
    let destinations: BTreeSet<(&str, i32)> = sent
        .iter()
        .map(|e| {
            let topic = match e["type"].as_str().unwrap() {
                "stream" => STREAM_EVENTS.name,
                "player" => PLAYER_EVENTS.name,
                _ => CHAT_EVENTS.name,
            };
            let stream = e["stream_id"].as_str().unwrap();
            (topic, partition_for(stream, STREAM_PARTITIONS))
        })
        .collect();
    assert_eq!(records.len(), destinations.len());
    for record in &records {
        for (received_ms, _) in record.events() {
            assert!((before..=after).contains(&received_ms), "{received_ms}");
        }
    }
    let pick = |indexes: &[usize]| indexes.iter().map(|&i| sent[i].clone()).collect::<Vec<_>>();
    let expected = BTreeMap::from([
        (key(STREAM_EVENTS.name, "s1"), pick(&[0])),
        (key(STREAM_EVENTS.name, "s2"), pick(&[7])),
        (key(PLAYER_EVENTS.name, "s1"), pick(&[1, 3, 8])),
        (key(PLAYER_EVENTS.name, "s2"), pick(&[5])),
        (key(CHAT_EVENTS.name, "s1"), pick(&[4])),
        (key(CHAT_EVENTS.name, "s2"), pick(&[2, 6])),
    ]);
    assert_eq!(events_by_topic_and_stream(&records), expected);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_and_gzip_bodies_are_accepted() {
    let (_dir, _broker, kafka) = broker().await;
    let collector = Running::start(config(), &kafka).await;
    let a = vec![chat_like("nd"), chat_message("nd", "one")];
    let b = vec![chat_like("gz-array"), player("gz-array", "start")];
    let c = vec![chat_message("gz-nd", "sniffed"), chat_like("gz-nd")];
    let d = vec![chat_like("sniffed-array")];

    let ok = |n| {
        (
            200,
            IngestResponse {
                accepted: n,
                rejected: vec![],
            },
        )
    };
    let ndjson_body = [b"\n".as_slice(), &ndjson(&a), b"\r\n\n"].concat();
    let response = collector
        .post_raw(&[("content-type", "application/x-ndjson")], ndjson_body)
        .await;
    assert_eq!(ingest_answer(response).await, ok(2));
    let response = collector
        .post_raw(
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("content-encoding", "gzip"),
            ],
            gzip(&serde_json::to_vec(&b).unwrap()),
        )
        .await;
    assert_eq!(ingest_answer(response).await, ok(2));
    // No Content-Type: the first byte decides.
    let response = collector
        .post_raw(&[("content-encoding", "gzip")], gzip(&ndjson(&c)))
        .await;
    assert_eq!(ingest_answer(response).await, ok(2));
    let response = collector
        .post_raw(&[], serde_json::to_vec(&d).unwrap())
        .await;
    assert_eq!(ingest_answer(response).await, ok(1));
    // An empty batch is fine and stores nothing.
    let response = collector.post_raw(&[], b" \n".to_vec()).await;
    assert_eq!(ingest_answer(response).await, ok(0));

    let got = events_by_topic_and_stream(&consume_all(&kafka).await);
    let expected = BTreeMap::from([
        (key(CHAT_EVENTS.name, "nd"), a),
        (key(CHAT_EVENTS.name, "gz-array"), vec![b[0].clone()]),
        (key(PLAYER_EVENTS.name, "gz-array"), vec![b[1].clone()]),
        (key(CHAT_EVENTS.name, "gz-nd"), c),
        (key(CHAT_EVENTS.name, "sniffed-array"), d),
    ]);
    assert_eq!(got, expected);
    collector.stop().await;
}

/// The figure of a clock-skew reason `ts is <ms><rest>`.
fn skew_ms(reason: &str, rest: &str) -> i64 {
    reason
        .strip_prefix("ts is ")
        .and_then(|r| r.strip_suffix(rest))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("unexpected skew reason: {reason}"))
}

fn rejected(index: usize, code: &str, reason: &str) -> RejectedEvent {
    RejectedEvent {
        index,
        code: code.into(),
        reason: reason.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_events_are_reported_by_index_and_the_rest_stored() {
    let (_dir, _broker, kafka) = broker().await;
    let collector = Running::start(config(), &kafka).await;
    let good_first = chat_like("s1");
    let good_last = player("s1", "start");
    let mut unknown_field = chat_like("s1");
    unknown_field["lieks"] = json!(1);
    let mut no_ts = chat_like("s1");
    no_ts.as_object_mut().unwrap().remove("ts");
    let mut no_text = chat_message("s1", "x");
    no_text.as_object_mut().unwrap().remove("text");
    let mut future = chat_like("s1");
    future["ts"] = json!(now_ms() + 3_600_000);
    let mut past = chat_like("s1");
    past["ts"] = json!(now_ms() - 2 * 86_400_000);
    let body = [
        good_first.clone(),
        json!(42),
        unknown_field,
        no_ts,
        no_text,
        future,
        past,
        good_last.clone(),
    ];
    let (status, answer) = ingest_answer(collector.post(&body).await).await;
    assert_eq!(status, 200);
    assert_eq!(answer.accepted, 2);
    let skew: Vec<(usize, &str, &str)> = answer.rejected[4..]
        .iter()
        .map(|r| (r.index, r.code.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        answer.rejected[..4],
        [
            rejected(
                1,
                "malformed",
                "malformed event: invalid type: integer `42`, expected struct Event at line 1 column 2"
            ),
            rejected(
                2,
                "malformed",
                "malformed event: unknown field `lieks`, expected one of `schema_version`, `event_id`, `ts`, `stream_id`, `type`, `event`, `session_id`, `viewer_id`, `device`, `player`, `cdn`, `region`, `startup_ms`, `bitrate_kbps`, `previous_bitrate_kbps`, `buffer_ms`, `rendition`, `dropped_frames`, `played_ms`, `stall_ms`, `latency_ms`, `upscale_pct`, `code`, `fatal`, `text`, `gift_id`, `count`, `value_cents`, `creator_id`, `title`, `category`, `segment_ms`, `frame_rate`, `keyframe_interval_ms` at line 1 column 73"
            ),
            rejected(
                3,
                "malformed",
                "malformed event: missing field `ts` at line 1 column 120"
            ),
            rejected(
                4,
                "missing_field",
                "missing field `text` required by chat `message` events"
            ),
        ]
    );
    // The skew figure depends on the milliseconds between building and
    // validating (zero or more), the rest of the reason does not.
    assert_eq!(skew.len(), 2);
    assert_eq!((skew[0].0, skew[0].1), (5, "ts_in_future"));
    let ahead = skew_ms(skew[0].2, " ms ahead of the server clock (limit 30000 ms)");
    assert!((3_590_000..=3_600_000).contains(&ahead), "{}", skew[0].2);
    assert_eq!((skew[1].0, skew[1].1), (6, "ts_in_past"));
    let behind = skew_ms(skew[1].2, " ms behind the server clock (limit 86400000 ms)");
    assert!(
        (172_800_000..=172_810_000).contains(&behind),
        "{}",
        skew[1].2
    );

    // NDJSON: a line that is not even JSON is one rejected event.
    let lines = [b"{\"event_id\": \n".as_slice(), &ndjson(&[chat_like("s2")])].concat();
    let response = collector
        .post_raw(&[("content-type", "application/x-ndjson")], lines)
        .await;
    assert_eq!(
        ingest_answer(response).await,
        (
            200,
            IngestResponse {
                accepted: 1,
                rejected: vec![rejected(
                    0,
                    "malformed",
                    "malformed event: EOF while parsing a value at line 1 column 12"
                )]
            }
        )
    );

    // Nothing acceptable: 400, with the same report.
    let mut bad_id = chat_like("s3");
    bad_id["event_id"] = json!("not-a-uuid");
    let (status, answer) = ingest_answer(collector.post(&[bad_id]).await).await;
    assert_eq!(
        (status, answer),
        (
            400,
            IngestResponse {
                accepted: 0,
                rejected: vec![rejected(
                    0,
                    "invalid_event_id",
                    "event_id \"not-a-uuid\" is not a UUID"
                )]
            }
        )
    );

    let got = events_by_topic_and_stream(&consume_all(&kafka).await);
    let expected = BTreeMap::from([
        (key(CHAT_EVENTS.name, "s1"), vec![good_first]),
        (key(PLAYER_EVENTS.name, "s1"), vec![good_last]),
        (
            key(CHAT_EVENTS.name, "s2"),
            got[&key(CHAT_EVENTS.name, "s2")].clone(),
        ),
    ]);
    assert_eq!(got, expected);
    assert_eq!(got[&key(CHAT_EVENTS.name, "s2")].len(), 1);
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_key_is_required_and_checked() {
    let (_dir, _broker, kafka) = broker().await;
    let collector = Running::start(config(), &kafka).await;
    let body = serde_json::to_vec(&[chat_like("s1")]).unwrap();
    let url = format!("{}/v1/events", collector.base);

    let response = collector
        .http
        .post(&url)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        error_answer(response).await,
        (
            401,
            "missing write key: send `Authorization: Bearer <write key>`".into()
        )
    );
    let basic = collector
        .http
        .post(&url)
        .basic_auth("test", Some(common::KEY))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);
    let wrong = collector
        .http
        .post(&url)
        .bearer_auth("test-key-0123456789abcdeX")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_answer(wrong).await, (403, "unknown write key".into()));
    // Nothing reached the broker.
    assert!(consume_all(&kafka).await.is_empty());
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_undecodable_requests_are_refused_whole() {
    let (_dir, _broker, kafka) = broker().await;
    let cfg = CollectorConfig {
        max_body_bytes: 64 * 1024,
        max_decoded_bytes: 256 * 1024,
        max_batch_events: 3,
        ..config()
    };
    let collector = Running::start(cfg, &kafka).await;
    let json = [("content-type", "application/json")];

    let big = format!("[{}]", " ".repeat(64 * 1024));
    let response = collector.post_raw(&json, big.into_bytes()).await;
    assert_eq!(
        error_answer(response).await,
        (413, "request body exceeds the limit of 65536 bytes".into())
    );
    // A gzip bomb: 2 KiB that inflate to 16 MiB.
    let bomb = gzip(&vec![b' '; 16 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let response = collector
        .post_raw(&[("content-encoding", "gzip")], bomb)
        .await;
    assert_eq!(
        error_answer(response).await,
        (
            413,
            "decompressed request body exceeds the limit of 262144 bytes".into()
        )
    );
    let four: Vec<Value> = (0..4).map(|_| chat_like("s1")).collect();
    let response = collector.post(&four).await;
    assert_eq!(
        error_answer(response).await,
        (
            413,
            "batch has 4 events, above the limit of 3 events per request".into()
        )
    );
    let response = collector
        .post_raw(&[("content-encoding", "br")], b"[]".to_vec())
        .await;
    assert_eq!(
        error_answer(response).await,
        (
            415,
            "unsupported Content-Encoding \"br\"; send gzip or identity".into()
        )
    );
    let response = collector
        .post_raw(&[("content-encoding", "gzip")], b"[]".to_vec())
        .await;
    assert_eq!(response.status().as_u16(), 400);
    let response = collector
        .post_raw(&json, serde_json::to_vec(&chat_like("s1")).unwrap())
        .await;
    assert_eq!(
        error_answer(response).await,
        (
            400,
            "body is not a JSON array of events: invalid type: map, expected a sequence at line 1 column 0".into()
        )
    );
    assert!(consume_all(&kafka).await.is_empty());
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_are_split_into_bounded_records() {
    let (_dir, _broker, kafka) = broker().await;
    let cfg = CollectorConfig {
        max_record_bytes: livepulse_ingest::collector::MIN_RECORD_BYTES,
        ..config()
    };
    let collector = Running::start(cfg, &kafka).await;
    let text = "x".repeat(900);
    let sent: Vec<Value> = (0..300).map(|_| chat_message("big", &text)).collect();
    let answer = ingest_answer(collector.post(&sent).await).await;
    assert_eq!(answer.0, 200);
    assert_eq!(answer.1.accepted, 300);

    let records = consume_all(&kafka).await;
    // ~1.1 KB per event in Arrow, 64 KiB per record: equally full records
    // but the last, each within the limit plus the IPC framing.
    let counts: Vec<usize> = records.iter().map(|r| r.events().len()).collect();
    let full = counts[0];
    assert!((50..64).contains(&full), "{counts:?}");
    assert_eq!(counts.len(), 300usize.div_ceil(full), "{counts:?}");
    assert!(
        counts[..counts.len() - 1].iter().all(|n| *n == full),
        "{counts:?}"
    );
    assert!(records.iter().all(|r| r.payload.len() <= 65_536 + 8_192));
    let got = events_by_topic_and_stream(&records);
    assert_eq!(got, BTreeMap::from([(key(CHAT_EVENTS.name, "big"), sent)]));
    collector.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_whether_a_broker_is_reachable() {
    let (_dir, _broker, kafka) = broker().await;
    let up = Running::start(config(), &kafka).await;
    let response = up.get("/healthz").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = Running::start(config(), &KafkaConfig::local(format!("127.0.0.1:{port}"))).await;
    let started = std::time::Instant::now();
    let response = down.get("/healthz").await;
    assert_eq!(response.status().as_u16(), 503);
    assert!(started.elapsed() < Duration::from_secs(3));
    let text = response.text().await.unwrap();
    assert!(text.starts_with("broker unreachable: "), "{text}");
    up.stop().await;
    down.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_request_finish() {
    let (_dir, _broker, kafka) = broker().await;
    let mut collector = Running::start(config(), &kafka).await;
    let event = chat_like("s1");
    let body = serde_json::to_vec(&[&event]).unwrap();
    let addr = collector.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        common::KEY,
        body.len()
    );
    // Half the body is in; the handler is waiting for the rest.
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&body[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    collector.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    socket.write_all(&body[10..]).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.ends_with(r#"{"accepted":1,"rejected":[]}"#),
        "{answer}"
    );
    collector.finished().await.unwrap();

    let got = events_by_topic_and_stream(&consume_all(&kafka).await);
    assert_eq!(
        got,
        BTreeMap::from([(key(CHAT_EVENTS.name, "s1"), vec![event])])
    );
}
