//! The Arrow schemas records are decoded into, and builders that fill them:
//! [`events`] for the event topics (in the column order of the ClickHouse
//! `events` table; the wire's `type` is the column `event_type`) and
//! [`requests`] for the origin's playback request log.
//!
//! Both schemas name what they share the same way (`event_id`, `ts`,
//! `stream_id`, `event_type`, `event`, `session_id`, ...), so a job reading
//! both topics sees one table: a column one topic lacks is null in its rows.

pub mod events;
pub mod requests;

pub use events::{EventColumns, event_schema, events_of};
pub use requests::{RequestColumns, request_schema, requests_of};

/// Column names the runtime relies on, for code that builds or reads batches.
pub mod col {
    /// The row's UUID: the client's `event_id`, or the origin's `request_id`.
    pub const EVENT_ID: &str = "event_id";
    /// Event time, epoch ms: client time of an event, receipt of a request.
    pub const TS: &str = "ts";
    /// Collector receive time, epoch ms.
    pub const RECEIVED_MS: &str = "received_ms";
    /// Stream id: the key every topic is partitioned by.
    pub const STREAM_ID: &str = "stream_id";
    /// Family (`type` on the wire), `request` for playback requests.
    pub const EVENT_TYPE: &str = "event_type";
    /// Kind (`event` on the wire); for a playback request, its object kind.
    pub const EVENT: &str = "event";
}
