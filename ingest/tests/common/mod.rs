//! Shared by the collector's integration tests: a real tansu broker, a
//! collector served on loopback, event builders and a consumer that reads
//! back everything the broker stored. [`origin`] serves the origin's tests.

pub mod origin;
pub mod rtmp;

use std::collections::BTreeMap;
use std::time::Duration;

use livepulse_connectors::kafka::{KafkaConfig, ensure_topics, group_consumer};
use livepulse_contract::arrow::events_of;
use livepulse_contract::record::{self, Payload};
use livepulse_contract::topics;
use livepulse_embedded::broker::LocalBroker;
use livepulse_ingest::collector::{Collector, CollectorConfig, CollectorError, WriteKey};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The write key every test collector accepts.
pub const KEY: &str = "test-key-0123456789abcdef";

/// A broker with the project's topics created.
pub async fn broker() -> (TempDir, LocalBroker, KafkaConfig) {
    let (dir, broker) = livepulse_embedded::testing::broker().await;
    let kafka = KafkaConfig::local(broker.bootstrap_servers());
    ensure_topics(&kafka, &topics::ALL).await.unwrap();
    (dir, broker, kafka)
}

/// A collector config accepting [`KEY`] (named `test`).
pub fn config() -> CollectorConfig {
    CollectorConfig {
        write_keys: vec![WriteKey {
            name: "test".into(),
            key: KEY.into(),
        }],
        delivery_timeout_ms: 2000,
        ..CollectorConfig::default()
    }
}

/// A collector served on a free loopback port.
pub struct Running {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// HTTP client.
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), CollectorError>>,
}

impl Running {
    pub async fn start(cfg: CollectorConfig, kafka: &KafkaConfig) -> Self {
        let collector = Collector::new(cfg, kafka).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(collector.serve(listener, async {
            let _ = rx.await;
        }));
        Self {
            base,
            http: reqwest::Client::new(),
            shutdown: Some(tx),
            task,
        }
    }

    /// `POST /v1/events` with the test key, a JSON array.
    pub async fn post(&self, events: &[Value]) -> reqwest::Response {
        self.post_raw(
            &[("content-type", "application/json")],
            serde_json::to_vec(events).unwrap(),
        )
        .await
    }

    /// `POST /v1/events` with the test key plus `headers`.
    pub async fn post_raw(&self, headers: &[(&str, &str)], body: Vec<u8>) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/v1/events", self.base))
            .bearer_auth(KEY)
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// Triggers the graceful shutdown.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Shuts down and waits until `serve` returned.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        self.task.await.unwrap().unwrap();
    }

    /// Waits until `serve` returned (after [`Running::begin_shutdown`]).
    pub async fn finished(self) -> Result<(), CollectorError> {
        self.task.await.unwrap()
    }
}

pub use livepulse_contract::now_ms;

fn id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn player(stream: &str, event: &str) -> Value {
    let mut e = json!({"event_id": id(), "ts": now_ms(), "stream_id": stream, "type": "player",
        "event": event, "session_id": format!("{stream}-sess"), "viewer_id": "viewer-1",
        "device": "desktop"});
    if event == "heartbeat" {
        e["bitrate_kbps"] = json!(2500);
        e["buffer_ms"] = json!(8000);
        e["played_ms"] = json!(10_000);
    }
    e
}

pub fn chat_message(stream: &str, text: &str) -> Value {
    json!({"event_id": id(), "ts": now_ms(), "stream_id": stream, "type": "chat",
        "event": "message", "viewer_id": "viewer-2", "text": text})
}

pub fn chat_like(stream: &str) -> Value {
    json!({"event_id": id(), "ts": now_ms(), "stream_id": stream, "type": "chat",
        "event": "like", "viewer_id": "viewer-3"})
}

pub fn stream_start(stream: &str) -> Value {
    json!({"event_id": id(), "ts": now_ms(), "stream_id": stream, "type": "stream",
        "event": "start", "creator_id": "creator-1", "title": "speedrun", "category": "gaming"})
}

/// One record read back from the broker.
#[derive(Debug)]
pub struct Consumed {
    pub topic: String,
    pub partition: i32,
    pub payload: Vec<u8>,
}

impl Consumed {
    /// The record's events, each with its `received_ms` and as the JSON the
    /// client sent.
    pub fn events(&self) -> Vec<(i64, Value)> {
        let batch = record::decode(Payload::Events, &self.payload).unwrap();
        events_of(&batch)
            .unwrap()
            .into_iter()
            .map(|(received_ms, e)| (received_ms, serde_json::to_value(e).unwrap()))
            .collect()
    }
}

/// Every record in the project's topics, in partition order.
pub async fn consume_all(kafka: &KafkaConfig) -> Vec<Consumed> {
    let consumer = group_consumer(kafka, &format!("test-{}", id())).unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut expected = 0;
    for topic in topics::ALL {
        for partition in 0..topic.partitions {
            assignment
                .add_partition_offset(topic.name, partition, Offset::Beginning)
                .unwrap();
            let (low, high) = consumer
                .fetch_watermarks(topic.name, partition, Duration::from_secs(10))
                .unwrap();
            expected += high - low;
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while (out.len() as i64) < expected {
        let message = tokio::time::timeout_at(deadline, consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("read {} of {expected} records", out.len()));
        match message {
            Ok(m) => out.push(Consumed {
                topic: m.topic().to_owned(),
                partition: m.partition(),
                payload: m.payload().unwrap().to_vec(),
            }),
            Err(KafkaError::PartitionEOF(_)) => {}
            Err(err) => panic!("consume failed: {err}"),
        }
    }
    out
}

/// The consumed events per (topic, stream), in partition order, checking
/// that each stream is in its partition.
pub fn events_by_topic_and_stream(records: &[Consumed]) -> BTreeMap<(String, String), Vec<Value>> {
    let mut out: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for record in records {
        for (_, event) in record.events() {
            let stream = event["stream_id"].as_str().unwrap().to_owned();
            assert_eq!(
                record.partition,
                topics::partition_for(&stream, topics::STREAM_PARTITIONS),
                "{stream} outside its partition"
            );
            out.entry((record.topic.clone(), stream))
                .or_default()
                .push(event);
        }
    }
    out
}
