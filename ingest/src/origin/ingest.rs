//! Publishing: `PUT` and `DELETE /live/{stream_key}/{path}`, as ffmpeg's
//! HLS muxer sends them with `-method PUT` (chunked bodies, no
//! `Content-Type`).
//!
//! ffmpeg ignores the answer, so every refusal is enforced by not storing:
//! a refused upload never becomes visible to viewers.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONNECTION, CONTENT_LENGTH};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use livepulse_contract::playback::ObjectKind;
use metrics::counter;
use thiserror::Error;
use tokio::time::{Instant, timeout_at};
use tracing::{debug, warn};

use super::health;
use super::keys::Identity;
use super::metrics::{REJECTED_KEYS, UPLOADS};
use super::path::{Extension, ObjectPath};
use super::playlist;
use super::service::{PublishError, Shared};
use super::store::Content;
use super::{empty, error};

/// Why an upload body was not read to its end.
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum UploadError {
    /// 413: more bytes than the object's limit.
    #[error("{what} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// `segment` or `playlist`.
        what: &'static str,
        /// The configured limit.
        limit: usize,
    },
    /// 408: the whole upload took too long.
    #[error("upload did not complete within {0} ms")]
    TooSlow(u64),
    /// 408: the upload stopped making progress.
    #[error("upload stalled: no data for {0} ms")]
    Stalled(u64),
    /// 400: the connection failed mid-body.
    #[error("cannot read the upload: {0}")]
    Read(String),
}

impl UploadError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooSlow(_) | Self::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Read(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// The bounds one upload is read under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    /// `segment` or `playlist`, for the message.
    pub what: &'static str,
    /// Most bytes.
    pub max_bytes: usize,
    /// Headers to last byte.
    pub total: Duration,
    /// Longest pause between chunks.
    pub idle: Duration,
}

/// Reads a whole upload within `limits`, refusing early what cannot fit.
pub(crate) async fn read_upload(
    headers: &HeaderMap,
    body: Body,
    limits: ReadLimits,
) -> Result<Bytes, UploadError> {
    let too_large = UploadError::TooLarge {
        what: limits.what,
        limit: limits.max_bytes,
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limits.max_bytes as u64) {
        return Err(too_large);
    }
    let started = Instant::now();
    let end = started + limits.total;
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |len| len as usize));
    let mut stream = body.into_data_stream();
    loop {
        let idle_end = Instant::now() + limits.idle;
        let next = match timeout_at(end.min(idle_end), stream.next()).await {
            Ok(next) => next,
            Err(_) if idle_end < end => {
                return Err(UploadError::Stalled(limits.idle.as_millis() as u64));
            }
            Err(_) => return Err(UploadError::TooSlow(limits.total.as_millis() as u64)),
        };
        let Some(chunk) = next else {
            return Ok(buf.freeze());
        };
        let chunk = chunk.map_err(|e| UploadError::Read(e.to_string()))?;
        if buf.len() + chunk.len() > limits.max_bytes {
            return Err(too_large);
        }
        buf.extend_from_slice(&chunk);
    }
}

/// The key and the raw object path of `/live/{key}/{path}`.
fn split(uri: &Uri) -> (&str, &str) {
    let rest = uri.path().strip_prefix("/live/").unwrap_or_default();
    rest.split_once('/').unwrap_or((rest, ""))
}

/// The stream a request's key publishes; `None` (logged and counted) when
/// the key is unknown or revoked.
fn authenticate(shared: &Shared, key: &str, method: &str, raw_path: &str) -> Option<Identity> {
    let identity = shared.keys.resolve(key);
    if identity.is_none() {
        counter!(REJECTED_KEYS).increment(1);
        // Never the key itself: it would be a secret in the logs.
        let object: String = raw_path.chars().take(128).collect();
        warn!(
            method,
            object, "upload with an unknown or revoked stream key refused"
        );
    }
    identity
}

fn forbidden() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "unknown or revoked stream key: nothing stored",
    )
}

/// `PUT /live/{stream_key}/{path}`.
pub(crate) async fn put(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = store_upload(&shared, &uri, &headers, body).await;
    counter!(UPLOADS, "method" => "PUT", "status" => response.status().as_str().to_owned())
        .increment(1);
    response
}

async fn store_upload(shared: &Shared, uri: &Uri, headers: &HeaderMap, body: Body) -> Response {
    let (key, raw_path) = split(uri);
    let Some(identity) = authenticate(shared, key, "PUT", raw_path) else {
        return forbidden();
    };
    let path = match ObjectPath::parse(raw_path) {
        Ok(path) => path,
        Err(err) => return error(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    let cfg = &shared.cfg;
    let is_playlist = path.ext.kind() == ObjectKind::Playlist;
    let limits = ReadLimits {
        what: if is_playlist { "playlist" } else { "segment" },
        max_bytes: if is_playlist {
            cfg.max_playlist_bytes
        } else {
            cfg.max_segment_bytes
        },
        total: cfg.upload_timeout(),
        idle: cfg.upload_idle_timeout(),
    };
    let raw = match read_upload(headers, body, limits).await {
        Ok(raw) => raw,
        Err(err) => {
            debug!(stream_id = %identity.stream_id, object = %path, error = %err, "upload refused");
            // The rest of the body is unread, so the connection cannot carry
            // another request: say so, or the client reuses it and fails.
            let mut response = error(err.status(), &err.to_string());
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    let playlist = if is_playlist {
        match playlist::parse(&raw, key, path.rendition.as_deref()) {
            Ok(playlist) => Some(playlist),
            Err(err) => {
                warn!(stream_id = %identity.stream_id, object = %path, error = %err, "playlist refused");
                return error(StatusCode::UNPROCESSABLE_ENTITY, &err.to_string());
            }
        }
    } else {
        None
    };
    let body = playlist.as_ref().map_or(raw, |p| p.body.clone());
    let size = body.len();
    let init = (path.ext == Extension::Mp4)
        .then(|| health::read_init(&identity.stream_id, &path, &body))
        .flatten()
        .map(Arc::new);
    let content = match (&playlist, path.ext.kind()) {
        (Some(playlist), _) => Content::Playlist(playlist),
        (None, ObjectKind::Init) => Content::Init(init.as_ref()),
        (None, _) => {
            let init = (path.ext == Extension::M4s)
                .then(|| shared.store.init(&identity.stream_id, &path.rendition))
                .flatten();
            Content::Segment(health::measure(
                &identity.stream_id,
                &path,
                &body,
                init.as_deref(),
            ))
        }
    };
    match shared.publish(key, &identity, &path, body, content) {
        Ok(replaced) => {
            debug!(stream_id = %identity.stream_id, object = %path, bytes = size, "stored");
            empty(if replaced {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::CREATED
            })
        }
        // The key was revoked while the body arrived.
        Err(PublishError::Revoked) => {
            counter!(REJECTED_KEYS).increment(1);
            forbidden()
        }
        Err(PublishError::Store(err)) => {
            warn!(stream_id = %identity.stream_id, object = %path, error = %err, "upload not stored");
            error(StatusCode::INSUFFICIENT_STORAGE, &err.to_string())
        }
    }
}

/// `DELETE /live/{stream_key}/{path}`: ffmpeg's `-hls_flags delete_segments`.
pub(crate) async fn delete(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let response = delete_object(&shared, &uri);
    counter!(UPLOADS, "method" => "DELETE", "status" => response.status().as_str().to_owned())
        .increment(1);
    response
}

fn delete_object(shared: &Shared, uri: &Uri) -> Response {
    let (key, raw_path) = split(uri);
    let Some(identity) = authenticate(shared, key, "DELETE", raw_path) else {
        return forbidden();
    };
    let path = match ObjectPath::parse(raw_path) {
        Ok(path) => path,
        Err(err) => return error(StatusCode::BAD_REQUEST, &err.to_string()),
    };
    if shared
        .store
        .delete(&identity.stream_id, &path, std::time::Instant::now())
    {
        empty(StatusCode::NO_CONTENT)
    } else {
        error(StatusCode::NOT_FOUND, &format!("no object `{path}`"))
    }
}

#[cfg(test)]
mod tests {
    use futures::stream;

    use super::*;

    fn limits(max_bytes: usize) -> ReadLimits {
        ReadLimits {
            what: "segment",
            max_bytes,
            total: Duration::from_millis(1000),
            idle: Duration::from_millis(300),
        }
    }

    fn chunks(parts: Vec<(u64, &'static [u8])>) -> Body {
        Body::from_stream(stream::iter(parts).then(|(wait_ms, data)| async move {
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            Ok::<_, std::io::Error>(Bytes::from_static(data))
        }))
    }

    #[tokio::test]
    async fn reads_within_the_bounds() {
        let body = chunks(vec![(0, b"ab"), (20, b"cd"), (20, b"e")]);
        let read = read_upload(&HeaderMap::new(), body, limits(5)).await;
        assert_eq!(read, Ok(Bytes::from_static(b"abcde")));
    }

    #[tokio::test]
    async fn refuses_too_large_stalled_and_slow_uploads() {
        let body = chunks(vec![(0, b"abc"), (0, b"def")]);
        let read = read_upload(&HeaderMap::new(), body, limits(5)).await;
        assert_eq!(
            read.unwrap_err().to_string(),
            "segment exceeds the limit of 5 bytes"
        );
        let mut declared = HeaderMap::new();
        declared.insert(CONTENT_LENGTH, "6".parse().unwrap());
        let read = read_upload(&declared, Body::empty(), limits(5)).await;
        assert_eq!(read.unwrap_err().status(), StatusCode::PAYLOAD_TOO_LARGE);

        let body = chunks(vec![(0, b"a"), (600, b"b")]);
        let read = read_upload(&HeaderMap::new(), body, limits(10)).await;
        assert_eq!(
            read.unwrap_err().to_string(),
            "upload stalled: no data for 300 ms"
        );

        let trickle = (0..100).map(|_| (50, b"x".as_slice())).collect();
        let read = read_upload(&HeaderMap::new(), chunks(trickle), limits(100)).await;
        let err = read.unwrap_err();
        assert_eq!(err.to_string(), "upload did not complete within 1000 ms");
        assert_eq!(err.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
