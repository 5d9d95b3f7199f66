//! The telemetry collector: players, chat and ingest servers send events over
//! HTTP; the collector validates them and produces them to Kafka.
//!
//! # `POST /v1/events`
//!
//! * **Auth**: `Authorization: Bearer <write key>` (keys from
//!   [`CollectorConfig::write_keys`]). Missing: 401 with
//!   `WWW-Authenticate: Bearer`; unknown key: 403.
//! * **Body**: a JSON array of events (`Content-Type: application/json`) or
//!   one event per line (`application/x-ndjson`); with any other or no
//!   `Content-Type` the first non-space byte decides (`[` means an array).
//!   `Content-Encoding: gzip` is accepted. The body as sent is bounded by
//!   `max_body_bytes`, after decompression by `max_decoded_bytes`, and the
//!   number of events by `max_batch_events`: beyond any of them, 413.
//! * **Validation** is per event (the contract's
//!   [`Event::validate`](livepulse_contract::Event::validate), timestamps
//!   bounded by [`CollectorConfig::limits`]): a bad event is reported and the
//!   others go on.
//! * **Answer** ([`IngestResponse`]): `{"accepted": n, "rejected": [{"index":
//!   i, "code": "...", "reason": "..."}]}`, 200 when at least one event was
//!   accepted or the batch was empty, 400 when every event was rejected.
//!   Rejected events must not be retried as they are. Whole-request failures
//!   answer [`ErrorResponse`] `{"error": "..."}`.
//! * **Durability**: a 200 is sent only after the broker acknowledged
//!   (idempotent producer, `acks=all`) every accepted event. When the broker
//!   is unreachable or does not acknowledge within `delivery_timeout_ms`, the
//!   answer is 503 with `Retry-After: <retry_after_secs>`; retry the same
//!   batch then. Some of its events may already be stored, so a retry can
//!   store them twice: that is by design, consumers de-duplicate by
//!   `event_id`, so clients must keep an event's `event_id` across retries.
//!
//! Accepted events of all requests are packed into columnar records (see
//! [`record`](livepulse_contract::record)), one open record per (topic,
//! partition), in the order they were accepted; a record is produced when
//! it reaches `max_record_bytes` or has waited `linger_ms`.
//!
//! # `GET /healthz` and `GET /metrics`
//!
//! `/healthz` answers 200 `ok` while the producer can reach a broker, 503
//! otherwise. `/metrics` is Prometheus text (names in [`metrics`]).
//!
//! The collector never sees, logs or records the client's IP address.

mod auth;
pub mod batch;
mod batcher;
mod config;
mod decode;
pub mod metrics;
mod routes;
mod service;
mod sink;

pub use config::{CollectorConfig, MAX_RECORD_BYTES, MIN_KEY_CHARS, MIN_RECORD_BYTES, WriteKey};
pub use livepulse_contract::api::{ErrorResponse, IngestResponse, RejectedEvent};
pub use service::Collector;

use livepulse_connectors::ConfigError;
use rdkafka::error::KafkaError;
use thiserror::Error;

/// Why the collector cannot start or stopped serving.
#[derive(Debug, Error)]
pub enum CollectorError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Kafka producer cannot be created.
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] KafkaError),
    /// The Prometheus recorder cannot be installed (another one is).
    #[error("cannot install the Prometheus recorder: {0}")]
    Metrics(String),
    /// Binding or serving failed.
    #[error("HTTP server error: {0}")]
    Serve(#[from] std::io::Error),
}
