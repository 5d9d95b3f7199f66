//! One RTMP connection: the handshake and the chunk and command protocol
//! (through `rml_rtmp`, which does no I/O), the publish decision, and the
//! messages handed to the [`Publisher`].

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics::counter;
use rml_rtmp::handshake::{Handshake, HandshakeError, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionError, ServerSessionEvent, ServerSessionResult,
};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::publisher::{MediaError, Publisher};
use super::{APP, Context};
use crate::origin::metrics::{RTMP_DISCONNECTS, RTMP_REFUSED};

/// Bytes read from the socket at once.
const READ_BUFFER: usize = 64 * 1024;

/// Why an RTMP connection ended.
#[derive(Debug, Error)]
pub(super) enum Closed {
    /// The publisher closed the connection.
    #[error("the publisher closed the connection")]
    Peer,
    /// The publisher ended its publish (`deleteStream`, `closeStream`).
    #[error("the publisher stopped publishing")]
    Unpublished,
    /// Nothing arrived for `rtmp_idle_timeout_ms`.
    #[error("no data for {0} ms")]
    Idle(u64),
    /// The origin is stopping.
    #[error("the origin is stopping")]
    Shutdown,
    /// The connection or publish was refused; the label says why.
    #[error("refused ({0})")]
    Refused(&'static str),
    /// Reading or writing failed.
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    /// Not an RTMP handshake.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// Chunks or commands that do not parse.
    #[error("RTMP protocol error: {0}")]
    Protocol(#[from] ServerSessionError),
    /// A media message beyond `rtmp_max_message_bytes`.
    #[error("{what} message of {size} bytes exceeds rtmp_max_message_bytes ({limit})")]
    TooLarge {
        /// `video` or `audio`.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The media could not be remuxed or stored.
    #[error(transparent)]
    Media(#[from] MediaError),
}

impl Closed {
    /// Label for the disconnect metric.
    fn reason(&self) -> &'static str {
        match self {
            Self::Peer | Self::Unpublished => "closed",
            Self::Idle(_) => "idle",
            Self::Shutdown => "shutdown",
            Self::Refused(_) => "refused",
            Self::Media(MediaError::Revoked) => "revoked",
            _ => "error",
        }
    }
}

/// Serves one connection until it ends; a publish it carried ends with it
/// (last segment flushed, `#EXT-X-ENDLIST`), unless its key was revoked.
pub(super) async fn run(
    mut stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Context>,
    stopping: CancellationToken,
) {
    let idle = ctx.shared.cfg.rtmp_idle_timeout();
    let mut connection = Connection {
        ctx,
        peer,
        idle,
        publisher: None,
    };
    let Err(closed) = connection.serve(&mut stream, &stopping).await;
    counter!(RTMP_DISCONNECTS, "reason" => closed.reason()).increment(1);
    let Some(publisher) = connection.publisher.take() else {
        debug!(%peer, reason = %closed, "RTMP connection closed");
        return;
    };
    let stream_id = publisher.stream_id().to_owned();
    match closed {
        Closed::Peer | Closed::Unpublished | Closed::Shutdown => {
            info!(%stream_id, reason = %closed, "RTMP publisher disconnected");
        }
        _ => warn!(%stream_id, reason = %closed, "RTMP publisher disconnected"),
    }
    // A revoked stream is gone already.
    if !matches!(closed, Closed::Media(MediaError::Revoked))
        && let Err(err) = publisher.finish()
    {
        warn!(%stream_id, error = %err, "cannot end the RTMP stream cleanly");
    }
    let _ = stream.shutdown().await;
}

struct Connection {
    ctx: Arc<Context>,
    peer: SocketAddr,
    idle: Duration,
    publisher: Option<Publisher>,
}

impl Connection {
    async fn serve(
        &mut self,
        stream: &mut TcpStream,
        stopping: &CancellationToken,
    ) -> Result<Infallible, Closed> {
        let mut buf = vec![0; READ_BUFFER];
        let mut handshake = Handshake::new(PeerType::Server);
        let remaining = loop {
            let read = self.read(stream, &mut buf, stopping).await?;
            match handshake.process_bytes(&buf[..read])? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.write(stream, &response_bytes).await?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    self.write(stream, &response_bytes).await?;
                    break remaining_bytes;
                }
            }
        };
        let (mut session, results) = ServerSession::new(ServerSessionConfig::new())?;
        self.handle(&mut session, results, stream).await?;
        let results = session.handle_input(&remaining)?;
        self.handle(&mut session, results, stream).await?;
        loop {
            let read = self.read(stream, &mut buf, stopping).await?;
            let results = session.handle_input(&buf[..read])?;
            self.handle(&mut session, results, stream).await?;
        }
    }

    /// Reads what arrived, within the idle timeout.
    async fn read(
        &self,
        stream: &mut TcpStream,
        buf: &mut [u8],
        stopping: &CancellationToken,
    ) -> Result<usize, Closed> {
        tokio::select! {
            read = timeout(self.idle, stream.read(buf)) => match read {
                Err(_) => Err(Closed::Idle(self.idle.as_millis() as u64)),
                Ok(Ok(0)) => Err(Closed::Peer),
                Ok(Ok(read)) => Ok(read),
                Ok(Err(err)) => Err(Closed::Io(err)),
            },
            () = stopping.cancelled() => Err(Closed::Shutdown),
        }
    }

    /// Writes to a publisher that must keep reading within the idle timeout.
    async fn write(&self, stream: &mut TcpStream, bytes: &[u8]) -> Result<(), Closed> {
        if bytes.is_empty() {
            return Ok(());
        }
        match timeout(self.idle, stream.write_all(bytes)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(Closed::Idle(self.idle.as_millis() as u64)),
        }
    }

    /// Sends the session's responses in order and acts on its events; the
    /// answer to a refusal still goes out before the connection closes.
    async fn handle(
        &mut self,
        session: &mut ServerSession,
        results: Vec<ServerSessionResult>,
        stream: &mut TcpStream,
    ) -> Result<(), Closed> {
        let mut out = Vec::new();
        let mut outcome = Ok(());
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    out.extend_from_slice(&packet.bytes);
                }
                ServerSessionResult::RaisedEvent(event) => {
                    outcome = self.on_event(session, event, &mut out);
                    if outcome.is_err() {
                        break;
                    }
                }
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        self.write(stream, &out).await?;
        outcome
    }

    fn on_event(
        &mut self,
        session: &mut ServerSession,
        event: ServerSessionEvent,
        out: &mut Vec<u8>,
    ) -> Result<(), Closed> {
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                if app_name != APP {
                    let reject = session.reject_request(
                        request_id,
                        "NetConnection.Connect.Rejected",
                        "unknown application: publish to rtmp://host:port/live/{stream_key}",
                    )?;
                    return Err(refuse(reject, out, "app"));
                }
                append(session.accept_request(request_id)?, out);
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                stream_key,
                ..
            } => self.publish(session, request_id, stream_key, out)?,
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let reject = session.reject_request(
                    request_id,
                    "NetStream.Play.Failed",
                    "this origin plays streams over HLS only",
                )?;
                return Err(refuse(reject, out, "play"));
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Some(publisher) = &mut self.publisher {
                    publisher.metadata(&metadata);
                }
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => {
                self.check_size("video", data.len())?;
                if let Some(publisher) = &mut self.publisher {
                    publisher.video(data, timestamp.value)?;
                }
            }
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => {
                self.check_size("audio", data.len())?;
                if let Some(publisher) = &mut self.publisher {
                    publisher.audio(data, timestamp.value)?;
                }
            }
            ServerSessionEvent::PublishStreamFinished { .. } => return Err(Closed::Unpublished),
            _ => {}
        }
        Ok(())
    }

    /// Accepts a publish of a known key whose stream has no publisher yet.
    fn publish(
        &mut self,
        session: &mut ServerSession,
        request_id: u32,
        key: String,
        out: &mut Vec<u8>,
    ) -> Result<(), Closed> {
        let shared = &self.ctx.shared;
        let bad_name = |session: &mut ServerSession, why: &str| {
            session.reject_request(request_id, "NetStream.Publish.BadName", why)
        };
        // Never the key in the logs: it is a secret.
        let Some(identity) = shared.keys.resolve(&key) else {
            warn!(peer = %self.peer, "RTMP publish with an unknown or revoked stream key refused");
            let reject = bad_name(session, "unknown or revoked stream key")?;
            return Err(refuse(reject, out, "key"));
        };
        let claim = match &self.publisher {
            None => self.ctx.publishers.claim(&identity.stream_id),
            Some(_) => None,
        };
        let Some(claim) = claim else {
            warn!(stream_id = %identity.stream_id, peer = %self.peer,
                "RTMP publish refused: the stream already has a publisher");
            let reject = bad_name(session, "the stream is already being published")?;
            return Err(refuse(reject, out, "busy"));
        };
        append(session.accept_request(request_id)?, out);
        info!(stream_id = %identity.stream_id, peer = %self.peer, "RTMP publisher connected");
        self.publisher = Some(Publisher::new(shared.clone(), key, identity, claim));
        Ok(())
    }

    fn check_size(&self, what: &'static str, size: usize) -> Result<(), Closed> {
        let limit = self.ctx.shared.cfg.rtmp_max_message_bytes;
        if size > limit {
            return Err(Closed::TooLarge { what, size, limit });
        }
        Ok(())
    }
}

/// The packets among `results`, appended to `out`.
fn append(results: Vec<ServerSessionResult>, out: &mut Vec<u8>) {
    for result in results {
        if let ServerSessionResult::OutboundResponse(packet) = result {
            out.extend_from_slice(&packet.bytes);
        }
    }
}

/// Queues a rejection's answer and counts it.
fn refuse(reject: Vec<ServerSessionResult>, out: &mut Vec<u8>, reason: &'static str) -> Closed {
    append(reject, out);
    counter!(RTMP_REFUSED, "reason" => reason).increment(1);
    Closed::Refused(reason)
}
