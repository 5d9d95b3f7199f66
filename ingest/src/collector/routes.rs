//! HTTP handlers: `POST /v1/events`, `GET /healthz`, `GET /metrics`.
//!
//! No handler sees the client's address (the server is not given
//! `ConnectInfo`), so none can log or record it.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics::counter;
use tracing::{debug, warn};

use super::auth::AuthError;
use super::batch;
use super::batcher::Receipt;
use super::decode::{self, DecodeError};
use super::metrics::{BROKER_ERRORS, EVENTS_ACCEPTED, EVENTS_REJECTED, REQUESTS};
use super::service::Shared;
use crate::broker_probe;
use livepulse_contract::api::{ErrorResponse, IngestResponse, RejectedEvent};

/// `POST /v1/events`.
pub(crate) async fn post_events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let response = ingest(&shared, &headers, body).await;
    counter!(REQUESTS, "status" => response.status().as_str().to_owned()).increment(1);
    response
}

async fn ingest(shared: &Shared, headers: &HeaderMap, body: Body) -> Response {
    let key_name = match shared.keys.authenticate(headers) {
        Ok(name) => name,
        Err(AuthError::Missing) => {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "missing write key: send `Authorization: Bearer <write key>`",
            );
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
        Err(AuthError::Unknown) => {
            debug!("request with an unknown write key");
            return error(StatusCode::FORBIDDEN, "unknown write key");
        }
    };
    let cfg = &shared.cfg;
    let prepared = match decode_and_prepare(shared, headers, body).await {
        Ok(prepared) => prepared,
        Err(response) => return response,
    };
    for rejected in &prepared.rejected {
        counter!(EVENTS_REJECTED, "code" => rejected.rejection.code()).increment(1);
    }
    let answer = IngestResponse {
        accepted: prepared.accepted,
        rejected: prepared
            .rejected
            .iter()
            .map(|r| RejectedEvent {
                index: r.index,
                code: r.rejection.code().to_owned(),
                reason: r.rejection.to_string(),
            })
            .collect(),
    };
    if prepared.accepted == 0 {
        let status = if answer.rejected.is_empty() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        return (status, Json(answer)).into_response();
    }
    let verdicts = futures::future::join_all(prepared.receipts.into_iter().map(Receipt::verdict));
    match verdicts.await.into_iter().find_map(Result::err) {
        None => {
            counter!(EVENTS_ACCEPTED).increment(prepared.accepted as u64);
            debug!(
                write_key = key_name,
                accepted = answer.accepted,
                rejected = answer.rejected.len(),
                "batch acknowledged"
            );
            (StatusCode::OK, Json(answer)).into_response()
        }
        Some(err) => {
            counter!(BROKER_ERRORS).increment(1);
            warn!(write_key = key_name, error = %err, "answering 503");
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("events not stored, retry later: {err}"),
            );
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(cfg.retry_after_secs));
            response
        }
    }
}

/// A validated request whose accepted events wait in their records.
struct Accepted {
    accepted: usize,
    rejected: Vec<batch::Rejected>,
    receipts: Vec<Receipt>,
}

/// Reads, decodes and validates the body and hands the accepted events to
/// their records; CPU-bound work runs off the async workers.
async fn decode_and_prepare(
    shared: &Shared,
    headers: &HeaderMap,
    body: Body,
) -> Result<Accepted, Response> {
    let cfg = &shared.cfg;
    let encoding = decode::encoding(headers).map_err(decode_error)?;
    let framing = decode::declared_framing(headers);
    let raw = decode::read_body(headers, body, cfg.max_body_bytes)
        .await
        .map_err(decode_error)?;
    let (max_decoded, max_events, limits) =
        (cfg.max_decoded_bytes, cfg.max_batch_events, cfg.limits);
    let batcher = std::sync::Arc::clone(&shared.batcher);
    let work = tokio::task::spawn_blocking(move || {
        let decoded = decode::decompress(raw, encoding, max_decoded)?;
        let elements = decode::elements(&decoded, framing, max_events)?;
        let now = livepulse_contract::now_ms();
        let prepared = batch::prepare(&elements, now, &limits);
        let receipts = batcher.append(&prepared.accepted, now);
        Ok::<_, DecodeError>(receipts.map(|receipts| Accepted {
            accepted: prepared.accepted.len(),
            rejected: prepared.rejected,
            receipts,
        }))
    });
    match work.await {
        Ok(Ok(Ok(accepted))) => Ok(accepted),
        Ok(Err(err)) => Err(decode_error(err)),
        Ok(Ok(Err(err))) => Err(internal(&err)),
        Err(err) => Err(internal(&err)),
    }
}

fn decode_error(err: DecodeError) -> Response {
    let status = match err {
        DecodeError::BodyTooLarge { .. }
        | DecodeError::DecodedTooLarge { .. }
        | DecodeError::TooManyEvents { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        DecodeError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        DecodeError::BadGzip(_) | DecodeError::NotAnArray(_) | DecodeError::Read(_) => {
            StatusCode::BAD_REQUEST
        }
    };
    error(status, &err.to_string())
}

fn internal(err: &dyn std::error::Error) -> Response {
    warn!(error = %err, "cannot process a batch");
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = ErrorResponse {
        error: message.to_owned(),
    };
    (status, Json(body)).into_response()
}

/// `GET /healthz`: 200 `ok` while the producer can fetch metadata from a
/// broker, 503 otherwise.
pub(crate) async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match broker_probe::probe(shared.producer.current()).await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, reason).into_response(),
    }
}

/// `GET /metrics`: Prometheus text exposition.
pub(crate) async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    shared.metrics.run_upkeep();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        shared.metrics.render(),
    )
        .into_response()
}
