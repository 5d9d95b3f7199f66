//! RTMP ingest: OBS, hardware encoders and ffmpeg (`-f flv`) publish to
//! `rtmp://host:port/live/{stream_key}`; H.264 and AAC are remuxed, without
//! transcoding, into MPEG-TS segments and playlists that enter the same
//! store as HTTP uploads, through the same entry point.
//!
//! * `session`: one connection, the handshake and the chunk protocol.
//! * `publisher`: one publish, from FLV messages to stored objects.
//! * `flv`, `ts`, `segmenter`: the media formats, free of I/O.

mod flv;
mod publisher;
mod segmenter;
mod session;
pub(crate) mod ts;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::{counter, gauge};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::metrics::{RTMP_CONNECTIONS, RTMP_REFUSED};
use super::service::Shared;

/// The RTMP application publishers connect to.
const APP: &str = "live";
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// How long stopping waits for publishers' last segments to be stored.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What every RTMP connection shares.
struct Context {
    shared: Arc<Shared>,
    publishers: Arc<Publishers>,
}

/// Streams with an RTMP publisher: a key publishes from one connection at a
/// time.
#[derive(Debug, Default)]
struct Publishers(Mutex<HashSet<Arc<str>>>);

impl Publishers {
    /// The right to publish `stream_id`, unless another connection holds it.
    fn claim(self: &Arc<Self>, stream_id: &Arc<str>) -> Option<Claim> {
        let mut live = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        live.insert(stream_id.clone()).then(|| Claim {
            publishers: self.clone(),
            stream_id: stream_id.clone(),
        })
    }
}

/// Held while a connection publishes a stream.
#[derive(Debug)]
struct Claim {
    publishers: Arc<Publishers>,
    stream_id: Arc<str>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut live = self
            .publishers
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        live.remove(&self.stream_id);
    }
}

/// Accepts RTMP publishers on `listener` until `stopping` is cancelled,
/// then waits (a bounded time) for their streams to end cleanly.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stopping: CancellationToken) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "RTMP ingest listening");
    }
    let limit = shared.cfg.rtmp_max_connections;
    let ctx = Arc::new(Context {
        shared,
        publishers: Arc::default(),
    });
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) if sessions.len() < limit => {
                    sessions.spawn(session::run(stream, peer, ctx.clone(), stopping.clone()));
                }
                Ok((_, peer)) => {
                    counter!(RTMP_REFUSED, "reason" => "connections").increment(1);
                    warn!(%peer, limit, "RTMP connection refused: rtmp_max_connections reached");
                }
                Err(err) => {
                    warn!(error = %err, "RTMP accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(done) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(err) = done {
                    warn!(error = %err, "RTMP connection task failed");
                }
            }
            () = stopping.cancelled() => break,
        }
        gauge!(RTMP_CONNECTIONS).set(sessions.len() as f64);
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            left = sessions.len(),
            "RTMP connections did not end in time; aborted"
        );
        sessions.abort_all();
    }
    gauge!(RTMP_CONNECTIONS).set(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_publisher_per_stream() {
        let publishers = Arc::new(Publishers::default());
        let stream: Arc<str> = "s1".into();
        let first = publishers.claim(&stream).unwrap();
        assert!(publishers.claim(&stream).is_none());
        assert!(publishers.claim(&"s2".into()).is_some());
        drop(first);
        assert!(publishers.claim(&stream).is_some());
    }
}
