//! The admin API: stream keys at run time, behind
//! `Authorization: Bearer <admin_token>`. Without a configured token every
//! admin route answers 404, as if it did not exist.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::config::{check_creator_id, check_stream_id};
use super::keys_file::KeysFileError;
use super::service::Shared;
use super::{empty, error};
use crate::bearer::{bearer, constant_time_eq};

/// A stream with a key, as `GET /admin/streams` lists it (never the key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// The stream.
    pub stream_id: String,
    /// Its owner.
    pub creator_id: String,
}

/// The body of `POST /admin/streams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewStream {
    /// The stream to create a key for: `[A-Za-z0-9_.-]`, 1 to 128 bytes.
    pub stream_id: String,
    /// Its owner.
    pub creator_id: String,
}

/// The answer to `POST /admin/streams` (201): the only place a generated
/// key is ever shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedStream {
    /// The stream.
    pub stream_id: String,
    /// Its owner.
    pub creator_id: String,
    /// The new stream key, for the publish URL `/live/{key}/...`.
    pub key: String,
}

/// The answer to a request that may not pass: 404 (admin API off), 401 or
/// 403; `None` lets it through.
fn refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &shared.cfg.admin_token else {
        return Some(error(StatusCode::NOT_FOUND, "not found"));
    };
    let Some(presented) = bearer(headers) else {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "missing admin token: send `Authorization: Bearer <admin token>`",
        );
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return Some(response);
    };
    (!constant_time_eq(presented, token.expose().as_bytes()))
        .then(|| error(StatusCode::FORBIDDEN, "invalid admin token"))
}

/// `GET /admin/streams`: `[{"stream_id", "creator_id"}]`, by stream id.
pub(crate) async fn list(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(response) = refusal(&shared, &headers) {
        return response;
    }
    let streams: Vec<StreamInfo> = shared
        .keys
        .list()
        .into_iter()
        .map(|identity| StreamInfo {
            stream_id: identity.stream_id.to_string(),
            creator_id: identity.creator_id.to_string(),
        })
        .collect();
    Json(streams).into_response()
}

/// `POST /admin/streams` with [`NewStream`]: 201 [`CreatedStream`], 409
/// when the stream has a key already (revoke it first).
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Authenticate before looking at the body.
    if let Some(response) = refusal(&shared, &headers) {
        return response;
    }
    let new: NewStream = match serde_json::from_slice(&body) {
        Ok(new) => new,
        Err(err) => return error(StatusCode::BAD_REQUEST, &format!("invalid body: {err}")),
    };
    if let Err(problem) = check_stream_id(&new.stream_id) {
        return error(StatusCode::BAD_REQUEST, &format!("stream_id {problem}"));
    }
    if let Err(problem) = check_creator_id(&new.creator_id) {
        return error(StatusCode::BAD_REQUEST, &format!("creator_id {problem}"));
    }
    let created = {
        let (shared, new) = (shared.clone(), new.clone());
        off_the_runtime(move || shared.keys.create(&new.stream_id, &new.creator_id)).await
    };
    let key = match created {
        Ok(Some(key)) => key,
        Ok(None) => {
            return error(
                StatusCode::CONFLICT,
                &format!(
                    "stream `{}` already has a key; revoke it first",
                    new.stream_id
                ),
            );
        }
        Err(response) => return response,
    };
    info!(stream_id = %new.stream_id, creator_id = %new.creator_id, "stream key created");
    let created = CreatedStream {
        stream_id: new.stream_id,
        creator_id: new.creator_id,
        key,
    };
    (StatusCode::CREATED, Json(created)).into_response()
}

/// `DELETE /admin/streams/{stream_id}`: revokes the key (204). Uploads with
/// it are refused from now on, and a live stream ends and stops being served.
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(stream_id): Path<String>,
) -> Response {
    if let Some(response) = refusal(&shared, &headers) {
        return response;
    }
    let revoked = {
        let (shared, stream_id) = (shared.clone(), stream_id.clone());
        off_the_runtime(move || shared.keys.revoke(&stream_id)).await
    };
    match revoked {
        Ok(Some(_)) => {}
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("stream `{stream_id}` has no key"),
            );
        }
        Err(response) => return response,
    }
    info!(%stream_id, "stream key revoked");
    shared.announce(shared.store.remove(&stream_id));
    empty(StatusCode::NO_CONTENT)
}

/// Runs a key change on a blocking thread (it may fsync the keys file);
/// a change that could not be kept is a 500 naming why.
async fn off_the_runtime<T: Send + 'static>(
    change: impl FnOnce() -> Result<T, KeysFileError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(change).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(err)) => {
            warn!(error = %err, "stream key change not made");
            Err(error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("nothing changed: {err}"),
            ))
        }
        Err(err) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("nothing changed: {err}"),
        )),
    }
}
