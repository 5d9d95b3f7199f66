//! The collector service: state, router, serving and shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use livepulse_connectors::kafka::KafkaConfig;
use metrics_exporter_prometheus::PrometheusHandle;
use rdkafka::producer::Producer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::auth::WriteKeys;
use super::batcher::Batcher;
use super::sink::ProducerSlot;
use super::{CollectorConfig, CollectorError, metrics, routes};

/// What every handler shares.
pub(crate) struct Shared {
    pub cfg: CollectorConfig,
    pub keys: WriteKeys,
    pub producer: Arc<ProducerSlot>,
    pub batcher: Arc<Batcher>,
    pub metrics: &'static PrometheusHandle,
}

/// The telemetry collector: `POST /v1/events` into Kafka, `/healthz`, `/metrics`.
///
/// ```no_run
/// # async fn demo() -> Result<(), livepulse_ingest::collector::CollectorError> {
/// use livepulse_connectors::kafka::KafkaConfig;
/// use livepulse_ingest::collector::{Collector, CollectorConfig, WriteKey};
///
/// let cfg = CollectorConfig {
///     write_keys: vec![WriteKey { name: "web".into(), key: "wk_0123456789abcdef".into() }],
///     ..CollectorConfig::default()
/// };
/// let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
/// let collector = Collector::new(cfg, &KafkaConfig::local("127.0.0.1:9092"))?;
/// collector.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct Collector {
    shared: Arc<Shared>,
}

impl Collector {
    /// Validates both configs and creates the producer (idempotent,
    /// `acks=all`, `message.timeout.ms` = `delivery_timeout_ms`). The broker
    /// need not be reachable yet: requests get 503 until it is.
    pub fn new(cfg: CollectorConfig, kafka: &KafkaConfig) -> Result<Self, CollectorError> {
        cfg.validate()?;
        kafka.validate()?;
        let producer = Arc::new(ProducerSlot::new(kafka, cfg.delivery_timeout())?);
        let metrics = metrics::handle()?;
        Ok(Self {
            shared: Arc::new(Shared {
                keys: WriteKeys::new(cfg.write_keys.clone()),
                batcher: Arc::new(Batcher::new(cfg.max_record_bytes)),
                cfg,
                producer,
                metrics,
            }),
        })
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/v1/events", post(routes::post_events))
            .route("/healthz", get(routes::healthz))
            .route("/metrics", get(routes::metrics))
            // The events handler enforces its own, configured limits.
            .layer(DefaultBodyLimit::disable())
            .with_state(self.shared.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then lets in-flight
    /// requests finish (their records are still produced) and flushes the
    /// producer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), CollectorError> {
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "collector listening");
        }
        let cfg = &self.shared.cfg;
        let stop_batcher = CancellationToken::new();
        let batcher = tokio::spawn(Arc::clone(&self.shared.batcher).run(
            Arc::clone(&self.shared.producer),
            cfg.linger(),
            cfg.delivery_timeout(),
            stop_batcher.clone(),
        ));
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        stop_batcher.cancel();
        if let Err(err) = batcher.await {
            warn!(error = %err, "the record batcher stopped abnormally");
        }
        served.map_err(CollectorError::Serve)?;
        let producer = self.shared.producer.current();
        let timeout = self.shared.cfg.delivery_timeout();
        // Every 2xx was sent after its acknowledgement, so whatever is still
        // queued belongs to requests already answered 503: a failed flush
        // loses nothing a client was told is stored.
        match tokio::task::spawn_blocking(move || producer.flush(timeout)).await {
            Ok(Ok(())) => info!("collector stopped, producer flushed"),
            Ok(Err(err)) => warn!(error = %err, "collector stopped, producer flush failed"),
            Err(err) => warn!(error = %err, "collector stopped, producer flush failed"),
        }
        Ok(())
    }
}
