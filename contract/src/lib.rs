//! The livepulse event contract: the one place that defines what travels
//! through the system.
//!
//! * [`Event`]: one client event as it arrives at the collector and as it
//!   travels inside Kafka records, versioned by [`SCHEMA_VERSION`].
//! * [`EventBatch`]: the Kafka record value, many events of one stream.
//! * [`validate`]: the rules every event must pass, with precise reasons.
//! * [`playback`]: the HLS origin's per-request log with the player's CMCD
//!   data ([`playback::PlaybackRequest`]).
//! * [`topics`] and [`tables`]: Kafka topic names with partition counts and
//!   the stream-to-partition rule, and ClickHouse table names.
//! * [`arrow`]: the Arrow schemas rows are decoded into, and their builders.
//! * [`record`]: Kafka record values, columnar (Arrow IPC, many rows per
//!   record) or JSON.
//! * [`api`]: the collector's answers to a batch.
//!
//! ```
//! use livepulse_contract::{Event, Limits};
//!
//! let json = r#"{"event_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10","ts":1700000000000,
//!   "stream_id":"s1","type":"chat","event":"like","viewer_id":"v1"}"#;
//! let event: Event = serde_json::from_str(json).unwrap();
//! event.validate(1_700_000_000_500, &Limits::default()).unwrap();
//! ```

pub mod api;
pub mod arrow;
mod event;
pub mod playback;
pub mod record;
pub mod tables;
pub mod topics;
pub mod validate;

pub use event::{Event, EventBatch, Family, Kind};
pub use validate::{Limits, Rejection};

/// Epoch milliseconds now: the clock of `ts`, `received_ms` and every
/// server-side time in the system.
///
/// ```
/// assert!(livepulse_contract::now_ms() > 1_700_000_000_000);
/// ```
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Version of the event contract spoken on the wire (`schema_version`).
pub const SCHEMA_VERSION: u16 = 1;
