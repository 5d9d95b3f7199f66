//! The dead-letter sink: records and events a job could not use go to
//! [`topics::DEAD_LETTER`] with the reason in a header, so they are kept and
//! counted instead of stopping the job or vanishing.

use std::time::Duration;

use livepulse_connectors::kafka::{KafkaConfig, idempotent_producer};
use livepulse_contract::topics;
use livepulse_sql::EventRow;
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
        let source = format!("{}/{}/{}", origin.topic, origin.partition, origin.offset);
        self.send(payload, None, Reason::Undecodable, &source, detail)
            .await
    }

    /// Dead-letters events beyond the correction horizon, one JSON row each
    /// (the raw events table's columns), keyed by stream.
    pub async fn too_late(&self, events: &[EventRow]) -> Result<(), SinkError> {
        for event in events {
            let payload = serde_json::to_vec(event).unwrap_or_default();
            let detail = format!(
                "event time {} ms is past the correction horizon",
                event.ts_ms
            );
            self.send(
                &payload,
                Some(&event.stream_id),
                Reason::TooLate,
                "",
                &detail,
            )
            .await?;
        }
        Ok(())
    }

    async fn send(
        &self,
        payload: &[u8],
        key: Option<&str>,
        reason: Reason,
        source: &str,
        detail: &str,
    ) -> Result<(), SinkError> {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "reason",
                value: Some(reason.as_str()),
            })
            .insert(Header {
                key: "detail",
                value: Some(detail),
            })
            .insert(Header {
                key: "job",
                value: Some(self.job),
            })
            .insert(Header {
                key: "source",
                value: Some(source),
            });
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut record = FutureRecord::to(topics::DEAD_LETTER.name)
                .payload(payload)
                .headers(headers.clone());
            if let Some(key) = key {
                record = record.key(key);
            }
            let last = match self.producer.send(record, Duration::from_secs(5)).await {
                Ok(_) => {
                    metrics::counter!("livepulse_pipeline_dead_letters_total", "reason" => reason.as_str())
                        .increment(1);
                    return Ok(());
                }
                Err((e, _)) => e.to_string(),
            };
            warn!(attempts, error = %last, "dead-letter produce failed; retrying");
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(SinkError::Cancelled { attempts, last }),
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}
