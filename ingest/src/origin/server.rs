//! The origin's HTTP/1.1 server loop. Unlike `axum::serve` it lets a
//! client half-close: ffmpeg shuts down its sending side right after an
//! upload's last chunk and only then reads the answer, and a server that
//! takes that EOF for a closed connection drops the upload before storing
//! it. It also bounds how long request headers may take (slow-loris before
//! the body) and passes each request its client address.

use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tower_service::Service;
use tracing::{debug, warn};

/// How long a client may take to send a request's headers; hyper also
/// closes a keep-alive connection idle this long. Longer than any usual
/// segment duration, so a publisher's persistent connection stays open.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting, lets in-flight requests finish and returns when every
/// connection closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = pin!(shutdown);
    // Dropping `closing` tells every connection to finish gracefully; each
    // holds a clone of `open` until it is done.
    let (closing, closed) = watch::channel(());
    let (open, mut all_done) = mpsc::channel::<()>(1);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let router = router.clone();
        let service = service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().call(request)
        });
        let mut closed = closed.clone();
        let open = open.clone();
        tokio::spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .half_close(true)
                .header_read_timeout(HEADER_TIMEOUT);
            let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = closed.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                debug!(error = %err, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    drop(closing);
    drop(open);
    // `None` once the last connection dropped its sender.
    let _ = all_done.recv().await;
}
