//! The collector's HTTP answers to `POST /v1/events`, shared by the
//! collector that writes them and the clients that read them.

use serde::{Deserialize, Serialize};

/// The answer to a batch that was read and validated: 200 when at least one
/// event was accepted (or the batch was empty), 400 when every event was
/// rejected.
///
/// ```
/// use livepulse_contract::api::IngestResponse;
///
/// let body = r#"{"accepted":1,"rejected":[{"index":1,"code":"ts_in_future",
///   "reason":"ts is 60000 ms ahead of the server clock (limit 30000 ms)"}]}"#;
/// let answer: IngestResponse = serde_json::from_str(body).unwrap();
/// assert_eq!(answer.rejected[0].code, "ts_in_future");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestResponse {
    /// Events acknowledged by the broker.
    pub accepted: usize,
    /// Events that will never be accepted as sent; do not retry them.
    pub rejected: Vec<RejectedEvent>,
}

/// One rejected event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEvent {
    /// Position in the batch, from 0 (for NDJSON: among the non-blank lines).
    pub index: usize,
    /// Stable machine-readable reason ([`crate::Rejection::code`]).
    pub code: String,
    /// Human-readable reason.
    pub reason: String,
}

/// The answer when the request as a whole failed (401, 403, 400, 413, 415,
/// 503, 500).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What went wrong.
    pub error: String,
}
