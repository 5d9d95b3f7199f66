//! The Kafka side: producing a request's records, waiting for the broker's
//! acknowledgements, and replacing a producer that stopped working.

use std::future::Future;
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
    /// The events could not be encoded as a record (a bug, not bad input).
    #[error("the record could not be encoded: {0}")]
    Encode(String),
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

/// Hands `records` to the current producer now, in order (so records of
/// one partition stay in order), and returns the wait for the broker's
/// verdict on each. A producer that failed a delivery is replaced.
pub(crate) fn deliver(
    slot: &Arc<ProducerSlot>,
    records: &[Record],
    timeout: Duration,
) -> impl Future<Output = Vec<Result<(), DeliveryError>>> + Send + 'static {
    let producer = slot.current();
    let started = Instant::now();
    let sends: Vec<_> = records
        .iter()
        .map(|record| {
            let sent = producer
                .send_result(
                    FutureRecord::<(), [u8]>::to(record.topic)
                        .partition(record.partition)
                        .payload(record.payload.as_slice()),
                )
                .map_err(|(err, _)| DeliveryError::Enqueue(err));
            (record.topic, sent)
        })
        .collect();
    let slot = Arc::clone(slot);
    async move {
        let waits = sends.into_iter().map(|(topic, sent)| async move {
            let verdict = tokio::time::timeout(timeout + BACKSTOP, sent?).await;
            match verdict {
                Ok(Ok(Ok(_))) => {
                    counter!(RECORDS_PRODUCED, "topic" => topic).increment(1);
                    Ok(())
                }
                Ok(Ok(Err((err, _)))) => Err(DeliveryError::Failed(err)),
                Ok(Err(_)) => Err(DeliveryError::Canceled),
                Err(_) => Err(DeliveryError::TimedOut(timeout + BACKSTOP)),
            }
        });
        let verdicts = join_all(waits).await;
        histogram!(PRODUCE_SECONDS).record(started.elapsed().as_secs_f64());
        let broken = verdicts.iter().any(|v| {
            matches!(
                v,
                Err(DeliveryError::Failed(_) | DeliveryError::TimedOut(_))
            )
        }) || producer.client().fatal_error().is_some();
        if broken {
            slot.replace(&producer);
        }
        release(producer);
        verdicts
    }
}
