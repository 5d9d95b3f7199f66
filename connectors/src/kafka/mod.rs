//! Kafka: client configuration, an idempotent producer, a consumer-group
//! consumer and topic administration.

mod admin;
mod config;

pub use admin::ensure_topics;
pub use config::{KafkaConfig, SaslConfig, SaslMechanism, SecurityProtocol, TlsConfig};

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext, DefaultConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A producer that never duplicates or reorders within a partition
/// (`enable.idempotence`, `acks=all`), compressing with lz4 (the test broker
/// cannot read snappy). A record not acknowledged within `delivery_timeout`
/// fails, so callers can answer "try again" instead of hanging.
pub fn idempotent_producer(
    cfg: &KafkaConfig,
    delivery_timeout: Duration,
) -> Result<FutureProducer, KafkaError> {
    cfg.client_config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set(
            "message.timeout.ms",
            delivery_timeout.as_millis().to_string(),
        )
        .create()
}

/// Sends `(topic, partition, payload)` records at once and waits for every
/// delivery; the first failure is returned once all have settled.
///
/// ```no_run
/// # async fn send(producer: &rdkafka::producer::FutureProducer) -> Result<(), rdkafka::error::KafkaError> {
/// use std::time::Duration;
///
/// let records = [("livepulse.player.v1", 3, b"LPA1...".as_slice())];
/// livepulse_connectors::kafka::send_all(producer, records, Duration::from_secs(30)).await
/// # }
/// ```
pub async fn send_all<'a>(
    producer: &FutureProducer,
    records: impl IntoIterator<Item = (&'a str, i32, &'a [u8])>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let sends = records.into_iter().map(|(topic, partition, payload)| {
        producer.send(
            FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(payload),
            timeout,
        )
    });
    for result in futures::future::join_all(sends).await {
        result.map_err(|(e, _)| e)?;
    }
    Ok(())
}

/// A consumer in `group_id` that commits only when told to (offsets are
/// committed after the sink wrote) and starts from the earliest offset when
/// the group has none.
pub fn group_consumer(cfg: &KafkaConfig, group_id: &str) -> Result<StreamConsumer, KafkaError> {
    group_consumer_with(cfg, group_id, DefaultConsumerContext)
}

/// [`group_consumer`] with a context that sees rebalances. The group splits
/// partitions with the `range` assignor: with co-partitioned topics it gives
/// a member the same partition numbers of every topic.
pub fn group_consumer_with<C: ConsumerContext + 'static>(
    cfg: &KafkaConfig,
    group_id: &str,
    context: C,
) -> Result<StreamConsumer<C>, KafkaError> {
    cfg.client_config()
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        // A fetch waits at most this long for new records (default 500 ms),
        // so a record a window's watermark needs is not held at the broker.
        .set("fetch.wait.max.ms", "100")
        .create_with_context(context)
}

/// A client for offset queries (ListOffsets) outside any group. It has its
/// own broker connections, so its queries do not queue behind a group
/// member's long-poll fetches.
pub fn offsets_client(cfg: &KafkaConfig) -> Result<BaseConsumer, KafkaError> {
    cfg.client_config().create()
}
