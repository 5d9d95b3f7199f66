//! The Kafka side: producing a request's records, waiting for the broker's
//! acknowledgements, and replacing a producer that stopped working.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use futures::future::join_all;
use livepulse_connectors::kafka::{KafkaConfig, idempotent_producer};
use metrics::{counter, histogram};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use thiserror::Error;
use tracing::{info, warn};

use super::batch::Record;
use super::metrics::{PRODUCE_SECONDS, RECORDS_PRODUCED};

/// Extra wait beyond the producer's own `message.timeout.ms`, so its verdict
/// normally arrives first and this is only a backstop.
const BACKSTOP: Duration = Duration::from_secs(1);

/// Why not every record of a request was acknowledged.
#[derive(Debug, Error)]
pub(crate) enum DeliveryError {
    /// The producer refused a record (e.g. its queue is full).
    #[error("the producer refused a record: {0}")]
    Enqueue(KafkaError),
    /// The broker did not take a record (or it timed out in the producer).
    #[error("the broker did not acknowledge a record: {0}")]
    Failed(KafkaError),
    /// No verdict within the delivery timeout.
    #[error("no acknowledgement from the broker within {0:?}")]
    TimedOut(Duration),
    /// The producer dropped a record without a verdict (it was replaced or
    /// is shutting down).
    #[error("the producer was closed before the broker answered")]
    Canceled,
}

/// The producer requests use, replaced after it failed a delivery.
///
/// An idempotent producer whose records timed out must bump its epoch
/// before it may produce again. tansu 0.6 (the test broker) does not
/// implement that request, so such a producer never recovers there; on
/// Apache Kafka a producer can likewise end in a fatal idempotence error.
/// A fresh producer (new producer id) recovers from both, so after a failed
/// delivery the next requests get a new one.
pub(crate) struct ProducerSlot {
    kafka: KafkaConfig,
    delivery_timeout: Duration,
    current: RwLock<Arc<FutureProducer>>,
}

impl ProducerSlot {
    pub(crate) fn new(kafka: &KafkaConfig, delivery_timeout: Duration) -> Result<Self, KafkaError> {
        Ok(Self {
            kafka: kafka.clone(),
            delivery_timeout,
            current: RwLock::new(Arc::new(idempotent_producer(kafka, delivery_timeout)?)),
        })
    }

    /// The producer to use now. Give it back with [`release`].
    pub(crate) fn current(&self) -> Arc<FutureProducer> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts a new producer in place of `failed`, unless another request
    /// already did. Requests still using `failed` finish with it.
    fn replace(&self, failed: &Arc<FutureProducer>) {
        if !Arc::ptr_eq(failed, &self.current()) {
            return;
        }
        let fresh = match idempotent_producer(&self.kafka, self.delivery_timeout) {
            Ok(producer) => Arc::new(producer),
            Err(err) => {
                warn!(error = %err, "cannot create a replacement producer");
                return;
            }
        };
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if Arc::ptr_eq(failed, &current) {
            let old = std::mem::replace(&mut *current, fresh);
            drop(current);
            info!("replaced the Kafka producer after a failed delivery");
            release(old);
        } else {
            drop(current);
            release(fresh);
        }
    }
}

/// Drops a producer handle. Dropping the last one destroys the producer,
/// which blocks (purge, flush, thread joins), so that happens off the async
/// workers.
pub(crate) fn release(producer: Arc<FutureProducer>) {
    if let Some(last) = Arc::into_inner(producer) {
        tokio::task::spawn_blocking(move || drop(last));
    }
}

/// Hands all `records` to the current producer in order (so records of one
/// stream stay in order in their partition) and waits until the broker
/// acknowledged every one of them.
pub(crate) async fn deliver(
    slot: &ProducerSlot,
    records: &[Record],
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let producer = slot.current();
    let result = produce(&producer, records, timeout).await;
    if let Err(err) = &result {
        let broken = matches!(err, DeliveryError::Failed(_) | DeliveryError::TimedOut(_))
            || producer.client().fatal_error().is_some();
        if broken {
            slot.replace(&producer);
        }
    }
    release(producer);
    result
}

async fn produce(
    producer: &FutureProducer,
    records: &[Record],
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let started = Instant::now();
    let mut pending = Vec::with_capacity(records.len());
    for record in records {
        let future = producer
            .send_result(
                FutureRecord::to(record.topic)
                    .key(record.key.as_str())
                    .payload(record.payload.as_slice()),
            )
            .map_err(|(err, _)| DeliveryError::Enqueue(err))?;
        pending.push(future);
    }
    let verdicts = tokio::time::timeout(timeout + BACKSTOP, join_all(pending)).await;
    histogram!(PRODUCE_SECONDS).record(started.elapsed().as_secs_f64());
    let verdicts = verdicts.map_err(|_| DeliveryError::TimedOut(timeout + BACKSTOP))?;
    let mut first_error = None;
    for (record, verdict) in records.iter().zip(verdicts) {
        let error = match verdict {
            Ok(Ok(_)) => {
                counter!(RECORDS_PRODUCED, "topic" => record.topic).increment(1);
                continue;
            }
            Ok(Err((err, _))) => DeliveryError::Failed(err),
            Err(_) => DeliveryError::Canceled,
        };
        first_error.get_or_insert(error);
    }
    first_error.map_or(Ok(()), Err)
}
