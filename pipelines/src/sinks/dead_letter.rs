//! The dead-letter sink: records and events a job could not use go to
//! [`topics::DEAD_LETTER`] with the reason in a header, so they are kept and
//! counted instead of stopping the job or vanishing.

use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::max;
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::record_batch::RecordBatch;
use livepulse_connectors::kafka::{KafkaConfig, idempotent_producer};
use livepulse_contract::arrow::col;
use livepulse_contract::{record, topics};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::clickhouse::SinkError;

/// Why something was dead-lettered (the `reason` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The record is not an event batch this runtime reads.
    Undecodable,
    /// The event's windows are past the correction horizon.
    TooLate,
}

impl Reason {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Undecodable => "undecodable",
            Self::TooLate => "beyond_correction_horizon",
        }
    }
}

/// Where a dead-lettered record came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Source topic.
    pub topic: &'a str,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
}

/// A producer for the dead-letter topic.
pub struct DeadLetterSink {
    producer: FutureProducer,
    job: &'static str,
    shutdown: CancellationToken,
}

impl DeadLetterSink {
    /// A sink for `job`'s dead letters.
    pub fn new(
        kafka: &KafkaConfig,
        job: &'static str,
        shutdown: CancellationToken,
    ) -> Result<Self, KafkaError> {
        Ok(Self {
            producer: idempotent_producer(kafka, Duration::from_secs(30))?,
            job,
            shutdown,
        })
    }

    /// Dead-letters an undecodable record as it was, with `detail`.
    pub async fn record(
        &self,
        payload: &[u8],
        origin: Origin<'_>,
        detail: &str,
    ) -> Result<(), SinkError> {
        let letter = Letter {
            payload: payload.to_vec(),
            rows: 1,
            headers: self.headers(
                Reason::Undecodable,
                detail,
                &format!("{}/{}/{}", origin.topic, origin.partition, origin.offset),
            ),
        };
        self.send(vec![letter], Reason::Undecodable).await
    }

    /// Dead-letters rows beyond the correction horizon: each batch (the
    /// job's input schema, with the rows' source partition and offset) as
    /// one columnar record, readable with
    /// [`record::decode`](livepulse_contract::record::decode)'s reader.
    pub async fn too_late(&self, batches: &[RecordBatch]) -> Result<(), SinkError> {
        let mut letters = Vec::with_capacity(batches.len());
        for batch in batches {
            let newest = batch
                .column_by_name(col::TS)
                .and_then(|ts| max(ts.as_primitive::<Int64Type>()))
                .unwrap_or_default();
            letters.push(Letter {
                // Arrow encodes any valid batch; a failure is a bug, kept visible.
                payload: record::encode(batch).unwrap_or_else(|e| e.to_string().into_bytes()),
                rows: batch.num_rows() as u64,
                headers: self.headers(
                    Reason::TooLate,
                    &format!(
                        "{} rows, event times up to {newest} ms, are past the correction horizon",
                        batch.num_rows()
                    ),
                    "",
                ),
            });
        }
        self.send(letters, Reason::TooLate).await
    }

    fn headers(&self, reason: Reason, detail: &str, source: &str) -> OwnedHeaders {
        [
            ("reason", reason.as_str()),
            ("detail", detail),
            ("job", self.job),
            ("source", source),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value),
            })
        })
    }

    /// Produces every letter concurrently; retries the undelivered ones until
    /// all are acknowledged or shutdown is requested.
    async fn send(&self, mut letters: Vec<Letter>, reason: Reason) -> Result<(), SinkError> {
        let mut attempts = 0;
        while !letters.is_empty() {
            attempts += 1;
            let sends = letters.iter().map(|letter| {
                let record = FutureRecord::<(), _>::to(topics::DEAD_LETTER.name)
                    .payload(&letter.payload)
                    .headers(letter.headers.clone());
                self.producer.send(record, Duration::from_secs(5))
            });
            let results = futures::future::join_all(sends).await;
            let mut last = None;
            let mut failed = Vec::new();
            for (letter, result) in letters.into_iter().zip(results) {
                match result {
                    Ok(_) => metrics::counter!("livepulse_pipeline_dead_letters_total", "reason" => reason.as_str())
                        .increment(letter.rows),
                    Err((e, _)) => {
                        last = Some(e.to_string());
                        failed.push(letter);
                    }
                }
            }
            letters = failed;
            if let Some(last) = last {
                warn!(attempts, undelivered = letters.len(), error = %last, "dead-letter produce failed; retrying");
                tokio::select! {
                    _ = self.shutdown.cancelled() => return Err(SinkError::Cancelled { attempts, last }),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        Ok(())
    }
}

/// One record for the dead-letter topic.
struct Letter {
    payload: Vec<u8>,
    /// Records or rows it carries, for the metric.
    rows: u64,
    headers: OwnedHeaders,
}
