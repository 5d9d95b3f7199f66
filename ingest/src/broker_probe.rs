//! The broker check behind the collector's and the origin's `/healthz`.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, Producer};

/// How long the cluster metadata may take.
const TIMEOUT: Duration = Duration::from_secs(1);

/// `Ok` when `producer` fetches cluster metadata naming a broker; otherwise
/// why not, for the health answer.
pub(crate) async fn probe(producer: Arc<FutureProducer>) -> Result<(), String> {
    // Blocking call; the handle is also dropped there, off the async workers.
    let brokers = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(None, TIMEOUT)
            .map(|metadata| metadata.brokers().len())
    })
    .await;
    match brokers {
        Ok(Ok(n)) if n > 0 => Ok(()),
        Ok(Ok(_)) => Err("no broker in the cluster metadata".to_owned()),
        Ok(Err(err)) => Err(format!("broker unreachable: {err}")),
        Err(err) => Err(format!("broker probe failed: {err}")),
    }
}
