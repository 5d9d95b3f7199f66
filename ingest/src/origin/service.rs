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
use bytes::Bytes;
use futures::future::OptionFuture;
use livepulse_connectors::kafka::KafkaConfig;
use metrics_exporter_prometheus::PrometheusHandle;
use rdkafka::producer::FutureProducer;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::health::SegmentHealth;
use super::keys::{Identity, StreamKeys};
use super::metrics::{STREAMS_ENDED, STREAMS_STARTED, UPLOAD_BYTES};
use super::path::ObjectPath;
use super::sink::{self, Batching, Change, Receivers, Sink, StreamEvent};
use super::spill::Spill;
use super::store::{Content, Lifecycle, Store, StoreError, StoreLimits};
use super::{OriginConfig, OriginError, admin, ingest, metrics, playback, rtmp, server};
use crate::broker_probe;

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

/// Why a publisher's object was not stored.
#[derive(Debug, Error)]
pub(crate) enum PublishError {
    /// The key no longer publishes the stream (revoked while it arrived).
    #[error("unknown or revoked stream key: nothing stored")]
    Revoked,
    /// The store's bounds refused it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Shared {
    /// Stores an object a publisher sent with `key` (an HTTP upload, or a
    /// segment or playlist remuxed from RTMP) and announces the lifecycle
    /// changes it causes: the one way objects enter the store, whatever
    /// the protocol. Returns whether it replaced an object of that name.
    pub(crate) fn publish(
        &self,
        key: &str,
        identity: &Identity,
        path: &ObjectPath,
        body: Bytes,
        content: Content<'_>,
    ) -> Result<bool, PublishError> {
        if self.keys.resolve(key).as_ref() != Some(identity) {
            return Err(PublishError::Revoked);
        }
        let size = body.len() as u64;
        let stored = self
            .store
            .put(identity, path, body, content, Instant::now())?;
        counter!(UPLOAD_BYTES).increment(size);
        // A session's health events go between its start and its end.
        let (ended, started): (Vec<_>, Vec<_>) = stored
            .lifecycle
            .into_iter()
            .partition(|change| matches!(change, Lifecycle::Ended(..)));
        self.announce(started);
        for health in stored.health {
            self.report(identity, health);
        }
        self.announce(ended);
        Ok(stored.replaced)
    }

    /// Logs, counts and produces stream lifecycle changes.
    pub(crate) fn announce(&self, changes: impl IntoIterator<Item = Lifecycle>) {
        for change in changes {
            let (identity, change) = match change {
                Lifecycle::Started(identity) => {
                    info!(stream_id = %identity.stream_id, creator_id = %identity.creator_id, "stream started");
                    counter!(STREAMS_STARTED).increment(1);
                    (identity, Change::Start)
                }
                Lifecycle::Ended(identity, reason) => {
                    info!(stream_id = %identity.stream_id, reason = reason.as_str(), "stream ended");
                    counter!(STREAMS_ENDED, "reason" => reason.as_str()).increment(1);
                    (identity, Change::End)
                }
            };
            self.sink.announce(StreamEvent { identity, change });
        }
    }

    /// Produces a segment's ingest health, through the same path as the
    /// lifecycle events.
    pub(crate) fn report(&self, identity: &Identity, health: SegmentHealth) {
        debug!(
            stream_id = %identity.stream_id,
            rendition = health.rendition.as_deref().unwrap_or(""),
            segment_ms = health.segment_ms,
            bitrate_kbps = health.bitrate_kbps,
            frame_rate = health.frame_rate,
            keyframe_interval_ms = health.keyframe_interval_ms,
            "segment health"
        );
        self.sink.announce(StreamEvent {
            identity: identity.clone(),
            change: Change::Health(health),
        });
    }
}

/// The HLS origin: publishers `PUT` HLS over HTTP to `/live/{key}/...`
/// (or push RTMP, see [`Origin::with_rtmp`]), viewers `GET` it from
/// `/hls/{stream_id}/...`; every playback request and every stream start
/// and end goes to Kafka. Also `/admin/streams`, `/healthz` and `/metrics`.
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
/// let rtmp_listen = cfg.rtmp_listen;
/// let mut origin = Origin::new(cfg, &KafkaConfig::local("127.0.0.1:9092"))?;
/// if let Some(addr) = rtmp_listen {
///     origin = origin.with_rtmp(tokio::net::TcpListener::bind(addr).await?);
/// }
/// origin.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
/// # }
/// ```
pub struct Origin {
    shared: Arc<Shared>,
    receivers: Receivers,
    rtmp: Option<TcpListener>,
}

impl Origin {
    /// Validates both configs, loads the keys file, prepares the spill
    /// directory and creates the producer. The broker need not be
    /// reachable: the origin serves without it and counts what it drops.
    pub fn new(cfg: OriginConfig, kafka: &KafkaConfig) -> Result<Self, OriginError> {
        cfg.validate()?;
        kafka.validate()?;
        let producer = Arc::new(sink::producer(
            kafka,
            Duration::from_millis(cfg.delivery_timeout_ms),
        )?);
        let metrics = metrics::handle()?;
        let (sink, receivers) = sink::channel(cfg.access_buffer_requests);
        let keys = StreamKeys::new(&cfg.streams, cfg.keys_file.clone())?;
        let spill = match &cfg.spill_dir {
            Some(dir) => Some(Spill::open(dir, cfg.spill_max_bytes).map_err(|source| {
                OriginError::Spill {
                    dir: dir.clone(),
                    source,
                }
            })?),
            None => None,
        };
        let limits = StoreLimits {
            max_segments_per_rendition: cfg.max_segments_per_rendition,
            max_memory_bytes: cfg.max_memory_bytes,
            idle_timeout: Duration::from_millis(cfg.stream_idle_timeout_ms),
            retention: Duration::from_millis(cfg.ended_retention_ms),
        };
        let store = Store::new(limits, spill);
        Ok(Self {
            shared: Arc::new(Shared {
                keys,
                cfg,
                store,
                sink,
                producer,
                metrics,
            }),
            receivers,
            rtmp: None,
        })
    }

    /// Also accepts RTMP publishers on `listener` (bound to
    /// [`OriginConfig::rtmp_listen`]) while [`Origin::serve`] runs; when
    /// serving stops, their streams end like a publisher's own stop.
    pub fn with_rtmp(mut self, listener: TcpListener) -> Self {
        self.rtmp = Some(listener);
        self
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

    /// Serves HTTP on `listener` (and RTMP when [`Origin::with_rtmp`] gave
    /// a listener) until `shutdown` completes, then lets in-flight requests
    /// finish, ends the live streams and flushes the producer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), OriginError> {
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, "origin listening");
        }
        let router = self.router();
        let Self {
            shared,
            receivers,
            rtmp,
        } = self;
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
        let stopping = CancellationToken::new();
        let rtmp = rtmp.map(|rtmp_listener| {
            tokio::spawn(rtmp::serve(rtmp_listener, shared.clone(), stopping.clone()))
        });
        let shutdown = async move {
            shutdown.await;
            stopping.cancel();
        };
        server::serve(listener, router, shutdown).await;
        if let Some(Err(err)) = OptionFuture::from(rtmp).await {
            warn!(error = %err, "RTMP ingest task failed");
        }
        sweeper.abort();
        shared.announce(shared.store.end_all(Instant::now()));
        // Nothing is served any more: free the memory and the spill files.
        shared.store.clear();
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
    let text = match broker_probe::probe(shared.producer.clone()).await {
        Ok(()) => "ok".to_owned(),
        Err(reason) => format!("ok; request log degraded: {reason}"),
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
