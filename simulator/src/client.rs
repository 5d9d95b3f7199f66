//! HTTP client of the collector's `POST /v1/events`.

use std::time::Duration;

use bytes::Bytes;
use livepulse_contract::Event;
use livepulse_contract::api::IngestResponse;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use thiserror::Error;

/// Attempts per batch while the collector answers 503 (or 429).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Longest `Retry-After` honoured; a larger one is cut to this.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);
/// First wait when the collector gives no `Retry-After`; doubles per attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Longest error body kept in [`ClientError::Status`], characters.
const MAX_ERROR_BODY: usize = 512;

/// Why a batch could not be delivered.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The base URL is not an http(s) URL.
    #[error("invalid collector URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// The batch could not be encoded as JSON.
    #[error("encoding the batch: {0}")]
    Encode(#[source] serde_json::Error),
    /// No answer: connection refused, reset or timed out.
    #[error("POST {url}: {source}")]
    Transport {
        /// The endpoint.
        url: String,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// The collector kept answering 503 (or 429).
    #[error("collector still unavailable (HTTP {status}) after {attempts} attempts")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last status.
        status: u16,
    },
    /// Any other non-success answer.
    #[error("collector answered HTTP {status}: {body}")]
    Status {
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// A success answer that is not `{"accepted": n, "rejected": [...]}`.
    #[error("collector answer is not the expected JSON: {0}")]
    Decode(#[source] serde_json::Error),
}

impl ClientError {
    /// Whether a later attempt may succeed (the collector is down, busy or
    /// failing), as opposed to a request it will never accept.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Transport { .. } | ClientError::Unavailable { .. } => true,
            ClientError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Sends event batches to a collector.
///
/// ```no_run
/// # async fn example(events: Vec<livepulse_contract::Event<'static>>) -> Result<(), livepulse_simulator::ClientError> {
/// use livepulse_simulator::CollectorClient;
///
/// let client = CollectorClient::new("http://127.0.0.1:8080", "write-key")?;
/// let outcome = client.send(&events).await?;
/// println!("{} accepted, {} rejected", outcome.accepted, outcome.rejected.len());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CollectorClient {
    http: reqwest::Client,
    endpoint: String,
    write_key: String,
    max_attempts: u32,
}

impl CollectorClient {
    /// A client of the collector at `base_url` (e.g. `http://127.0.0.1:8080`),
    /// authenticating with the write key as a bearer token.
    pub fn new(base_url: &str, write_key: &str) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let url = Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!("scheme {:?} is not http(s)", url.scheme())));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("livepulse-simulator/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(ClientError::Build)?;
        Ok(Self {
            http,
            endpoint: format!("{}/v1/events", base_url.trim_end_matches('/')),
            write_key: write_key.to_owned(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        })
    }

    /// Sets the attempts per batch while the collector answers 503 (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The URL batches are posted to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// POSTs `events` as one JSON array. While the collector answers 503
    /// (or 429) it waits as `Retry-After` says and tries again, up to the
    /// configured attempts. A 400 or 422 whose body is the usual answer
    /// (everything rejected) is returned as an outcome, not an error.
    pub async fn send(&self, events: &[Event<'_>]) -> Result<IngestResponse, ClientError> {
        let body = Bytes::from(serde_json::to_vec(events).map_err(ClientError::Encode)?);
        let transport = |source| ClientError::Transport {
            url: self.endpoint.clone(),
            source,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self
                .http
                .post(&self.endpoint)
                .bearer_auth(&self.write_key)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(transport)?;
            let status = response.status();
            if matches!(
                status,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
            ) {
                if attempt >= self.max_attempts {
                    return Err(ClientError::Unavailable {
                        attempts: attempt,
                        status: status.as_u16(),
                    });
                }
                let wait = retry_after(response.headers()).unwrap_or_else(|| backoff(attempt));
                tracing::debug!(
                    status = status.as_u16(),
                    attempt,
                    wait_ms = wait.as_millis() as u64,
                    "collector busy, retrying"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            let bytes = response.bytes().await.map_err(transport)?;
            if status.is_success() {
                return serde_json::from_slice(&bytes).map_err(ClientError::Decode);
            }
            if matches!(
                status,
                StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
            ) && let Ok(outcome) = serde_json::from_slice::<IngestResponse>(&bytes)
            {
                return Ok(outcome);
            }
            return Err(ClientError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(MAX_ERROR_BODY)
                    .collect(),
            });
        }
    }
}

/// The wait a `Retry-After: <seconds>` header asks for, capped. The HTTP-date
/// form is not honoured (collectors send seconds); the caller backs off instead.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_WAIT))
}

/// Exponential backoff for attempt `n` (from 1), capped.
fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(8))
        .min(MAX_RETRY_WAIT)
}

#[cfg(test)]
mod tests {
    use livepulse_contract::api::RejectedEvent;
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn honours_retry_after_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_WAIT));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(4), Duration::from_millis(1_600));
        assert_eq!(backoff(40), MAX_RETRY_WAIT);
    }

    #[test]
    fn builds_the_endpoint_and_rejects_bad_urls() {
        let client = CollectorClient::new("http://127.0.0.1:8080/", "k").unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:8080/v1/events");
        let err = CollectorClient::new("ftp://host", "k").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid collector URL \"ftp://host\": scheme \"ftp\" is not http(s)"
        );
        assert!(CollectorClient::new("not a url", "k").is_err());
    }

    #[test]
    fn decodes_the_collector_answer() {
        let outcome: IngestResponse = serde_json::from_str(
            r#"{"accepted":2,"rejected":[{"index":1,"code":"ts_in_past","reason":"too old"}]}"#,
        )
        .unwrap();
        assert_eq!(outcome.accepted, 2);
        assert_eq!(
            outcome.rejected,
            vec![RejectedEvent {
                index: 1,
                code: "ts_in_past".into(),
                reason: "too old".into()
            }]
        );
    }
}
