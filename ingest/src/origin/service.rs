//! The origin service: state, router, background tasks, serving and shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::metrics::counter;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use livepulse_connectors::kafka::KafkaConfig;
use livepulse_contract::Kind;
use metrics_exporter_prometheus::PrometheusHandle;
use rdkafka::producer::{FutureProducer, Producer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::keys::StreamKeys;
use super::metrics::{STREAMS_ENDED, STREAMS_STARTED};
use super::sink::{self, Batching, Receivers, Sink, StreamEvent};
use super::store::{Lifecycle, Store, StoreLimits};
use super::{OriginConfig, OriginError, admin, ingest, metrics, playback, server};

/// How long `/healthz` waits for the broker's metadata.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest admin API request body, bytes.
const ADMIN_BODY_BYTES: usize = 16 * 1024;

/// What every handler shares.
pub(crate) struct Shared {
    pub cfg: OriginConfig,
    pub keys: StreamKeys,
    pub store: Store,
    pub sink: Sink,
    pub producer: Arc<FutureProducer>,
    pub metrics: &'static PrometheusHandle,
}

impl Shared {
    /// Logs, counts and produces stream lifecycle changes.
    pub(crate) fn announce(&self, changes: impl IntoIterator<Item = Lifecycle>) {
        for change in changes {
            let (identity, kind) = match change {
                Lifecycle::Started(identity) => {
                    info!(stream_id = %identity.stream_id, creator_id = %identity.creator_id, "stream started");
                    counter!(STREAMS_STARTED).increment(1);
                    (identity, Kind::Start)
                }
                Lifecycle::Ended(identity, reason) => {
                    info!(stream_id = %identity.stream_id, reason = reason.as_str(), "stream ended");
                    counter!(STREAMS_ENDED, "reason" => reason.as_str()).increment(1);
                    (identity, Kind::End)
                }
            };
            self.sink.announce(StreamEvent { identity, kind });
        }
    }
}

/// The HLS origin: publishers `PUT` HLS over HTTP to `/live/{key}/...`,
/// viewers `GET` it from `/hls/{stream_id}/...`; every playback request and
/// every stream start and end goes to Kafka. Also `/admin/streams`,
/// `/healthz` and `/metrics`.
///
/// ```no_run
/// # async fn demo() -> Result<(), livepulse_ingest::origin::OriginError> {
/// use livepulse_connectors::kafka::KafkaConfig;
/// use livepulse_ingest::origin::{Origin, OriginConfig, StreamKey};
///
/// let cfg = OriginConfig {
///     streams: vec![StreamKey {
///         key: "sk_0123456789abcdef".into(),
///         stream_id: "speedrun".into(),
///         creator_id: "creator-1".into(),
///     }],
///     ..OriginConfig::default()
/// };
/// let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
/// let origin = Origin::new(cfg, &KafkaConfig::local("127.0.0.1:9092"))?;
/// origin.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct Origin {
    shared: Arc<Shared>,
    receivers: Receivers,
}

impl Origin {
    /// Validates both configs and creates the producer. The broker need not
    /// be reachable: the origin serves without it and counts what it drops.
    pub fn new(cfg: OriginConfig, kafka: &KafkaConfig) -> Result<Self, OriginError> {
        cfg.validate()?;
        kafka.validate()?;
        let producer = Arc::new(sink::producer(
            kafka,
            Duration::from_millis(cfg.delivery_timeout_ms),
        )?);
        let metrics = metrics::handle()?;
        let (sink, receivers) = sink::channel(cfg.access_buffer_requests);
        let store = Store::new(StoreLimits {
            max_segments_per_rendition: cfg.max_segments_per_rendition,
            max_memory_bytes: cfg.max_memory_bytes,
            idle_timeout: Duration::from_millis(cfg.stream_idle_timeout_ms),
            retention: Duration::from_millis(cfg.ended_retention_ms),
        });
        Ok(Self {
            shared: Arc::new(Shared {
                keys: StreamKeys::new(&cfg.streams),
                cfg,
                store,
                sink,
                producer,
                metrics,
            }),
            receivers,
        })
    }

    /// The HTTP routes. [`Origin::serve`] serves them with what they rely
    /// on: a server that lets ffmpeg half-close its uploads and records
    /// client addresses (`ConnectInfo<SocketAddr>`, for the log's cohorts),
    /// the background producer of the request log and the stream sweeper.
    pub fn router(&self) -> Router {
        let admin = Router::new()
            .route("/admin/streams", get(admin::list).post(admin::create))
            .route(
                "/admin/streams/{stream_id}",
                axum::routing::delete(admin::revoke),
            )
            .layer(DefaultBodyLimit::max(ADMIN_BODY_BYTES));
        Router::new()
            // Uploads read their raw body under the origin's own limits.
            .route("/live/{*path}", put(ingest::put).delete(ingest::delete))
            .route(
                "/hls/{*path}",
                get(playback::get).options(playback::preflight),
            )
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics_text))
            .merge(admin)
            .with_state(self.shared.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then lets in-flight
    /// requests finish, ends the live streams and flushes the producer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), OriginError> {
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "origin listening");
        }
        let router = self.router();
        let Self { shared, receivers } = self;
        let cfg = &shared.cfg;
        let batching = Batching {
            every: Duration::from_millis(cfg.access_flush_ms),
            max_record_bytes: cfg.max_record_bytes,
            delivery_timeout: Duration::from_millis(cfg.delivery_timeout_ms),
        };
        let (stop, stopped) = oneshot::channel();
        let producing = tokio::spawn(sink::run(
            receivers,
            shared.producer.clone(),
            batching,
            stopped,
        ));
        let sweeper = tokio::spawn(sweep(shared.clone()));
        server::serve(listener, router, shutdown).await;
        sweeper.abort();
        shared.announce(shared.store.end_all(Instant::now()));
        // The receiver only goes away if the task already ended.
        let _ = stop.send(());
        if let Err(err) = producing.await {
            warn!(error = %err, "origin request log task failed");
        }
        info!("origin stopped");
        Ok(())
    }
}

/// Ends silent streams and removes expired ones, a few times per timeout.
async fn sweep(shared: Arc<Shared>) {
    let cfg = &shared.cfg;
    let shortest = cfg
        .stream_idle_timeout_ms
        .min(cfg.ended_retention_ms.max(1));
    let every = Duration::from_millis((shortest / 4).clamp(50, 1000));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        shared.announce(shared.store.sweep(Instant::now()));
    }
}

/// `GET /healthz`: 200 while serving. Playback never depends on Kafka, so
/// an unreachable broker only shows in the text.
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let producer = shared.producer.clone();
    let probe = tokio::task::spawn_blocking(move || {
        producer
            .client()
            .fetch_metadata(None, HEALTH_TIMEOUT)
            .map(|metadata| metadata.brokers().len())
    })
    .await;
    let text = match probe {
        Ok(Ok(brokers)) if brokers > 0 => "ok".to_owned(),
        Ok(Ok(_)) => "ok; request log degraded: no broker in the cluster metadata".to_owned(),
        Ok(Err(err)) => format!("ok; request log degraded: broker unreachable: {err}"),
        Err(err) => format!("ok; broker probe failed: {err}"),
    };
    (StatusCode::OK, text).into_response()
}

/// `GET /metrics`: Prometheus text exposition.
async fn metrics_text(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.run_upkeep();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        shared.metrics.render(),
    )
        .into_response()
}
