//! Playback: `GET`/`HEAD /hls/{stream_id}/{path}` for playlists, init and
//! media segments, CORS for browser players, and a request-log record per
//! request (with the player's CMCD, never its address).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, CACHE_CONTROL, CONTENT_TYPE,
};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use livepulse_contract::api::ErrorResponse;
use livepulse_contract::now_ms;
use livepulse_contract::playback::PlaybackRequest;
use metrics::counter;
use tracing::{debug, warn};

use super::access::Metered;
use super::cmcd;
use super::cohort::client_cohort;
use super::config::check_stream_id;
use super::error;
use super::metrics::{CMCD_MALFORMED, PLAYBACK_REQUESTS};
use super::path::ObjectPath;
use super::service::Shared;
use super::store::{Found, FoundBody, Freshness};

/// `Cache-Control` of a playlist that still changes: players poll it.
pub const LIVE_PLAYLIST_CACHE: &str = "public, max-age=1";
/// `Cache-Control` of segments and of playlists that no longer change.
pub const FINAL_CACHE: &str = "public, max-age=86400, immutable";
/// `Cache-Control` of errors: a 404 for a segment not yet published must
/// not stick in a cache.
pub const ERROR_CACHE: &str = "no-store";
/// Response headers a browser player may read (CMSD is set by a later layer).
const EXPOSED: &str = "CMSD-Static, CMSD-Dynamic";
/// Request headers a browser player may send.
const ALLOWED: &str = "CMCD-Object, CMCD-Request, CMCD-Session, CMCD-Status";

/// `GET /hls/{stream_id}/{path}` (and `HEAD`, which axum answers from it).
pub(crate) async fn get(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let received = Instant::now();
    let received_ms = now_ms();
    let (request, _) = request.into_parts();
    let response = answer(&shared, &request, received, received_ms).await;
    counter!(PLAYBACK_REQUESTS, "status" => response.status().as_str().to_owned()).increment(1);
    response
}

async fn answer(shared: &Shared, request: &Parts, received: Instant, received_ms: i64) -> Response {
    let raw = request.uri.path().strip_prefix("/hls/").unwrap_or_default();
    let Some((stream_id, raw_path)) = raw.split_once('/') else {
        return cors(error(StatusCode::NOT_FOUND, "not found"));
    };
    if let Err(problem) = check_stream_id(stream_id) {
        return cors(error(
            StatusCode::BAD_REQUEST,
            &format!("stream id {problem}"),
        ));
    }
    let path = match ObjectPath::parse(raw_path) {
        Ok(path) => path,
        Err(err) => return cors(error(StatusCode::BAD_REQUEST, &err.to_string())),
    };
    let cmcd = match cmcd::from_request(request.uri.query(), &request.headers) {
        Ok(cmcd) => cmcd,
        Err(err) => {
            counter!(CMCD_MALFORMED).increment(1);
            debug!(stream_id, object = %path, error = %err, "CMCD ignored");
            None
        }
    };
    let client_cohort = request
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(
            || "unknown".to_owned(),
            |info| client_cohort(info.0.ip(), &request.headers, &shared.cfg.trusted_proxies),
        );
    let failure = |status: StatusCode, text: String| {
        let body = serde_json::to_vec(&ErrorResponse { error: text }).unwrap_or_default();
        (status, Bytes::from(body), "application/json", ERROR_CACHE)
    };
    let (status, body, content_type, cache) = match read(shared.store.get(stream_id, &path)).await {
        Ok(Some((body, freshness))) => {
            let cache = match freshness {
                Freshness::Live => LIVE_PLAYLIST_CACHE,
                Freshness::Final => FINAL_CACHE,
            };
            (StatusCode::OK, body, path.ext.content_type(), cache)
        }
        Ok(None) => failure(
            StatusCode::NOT_FOUND,
            format!("no object `{path}` in stream `{stream_id}`"),
        ),
        Err(err) => {
            warn!(stream_id, object = %path, error = %err, "cannot read a spilled segment");
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read `{path}` from the spill directory"),
            )
        }
    };
    let record = PlaybackRequest {
        request_id: uuid::Uuid::new_v4().to_string(),
        received_ms,
        stream_id: stream_id.to_owned(),
        rendition: path.rendition.clone(),
        object: path.name.clone(),
        object_kind: path.ext.kind(),
        status: status.as_u16(),
        bytes_sent: 0,
        complete: false,
        ttfb_us: None,
        ttlb_us: None,
        client_cohort,
        cmcd,
    };
    let body = Body::new(Metered::new(body, record, received, shared.sink.clone()));
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    cors(response)
}

/// A found object's bytes and freshness, read from the spill directory
/// when it is there (the file stays while it is read).
async fn read(found: Option<Found>) -> std::io::Result<Option<(Bytes, Freshness)>> {
    let Some(found) = found else {
        return Ok(None);
    };
    let body = match found.body {
        FoundBody::Memory(bytes) => bytes,
        FoundBody::Disk(file) => Bytes::from(tokio::fs::read(file.path()).await?),
    };
    Ok(Some((body, found.freshness)))
}

/// `OPTIONS /hls/...`: the CORS preflight of a player sending CMCD headers.
pub(crate) async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    headers.insert(
        ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED),
    );
    headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    cors(response)
}

/// Adds the CORS headers every playback answer carries.
fn cors(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSED),
    );
    response
}
