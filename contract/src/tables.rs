//! ClickHouse table names. The migrations in `sql/migrations` create exactly
//! these; a test in the `sql` crate holds the two together.

/// Every accepted event, one row each, partitioned by day.
pub const EVENTS: &str = "events";
/// The engagement job's output: one row per (window, stream).
pub const STREAM_ENGAGEMENT: &str = "stream_engagement";
/// The engagement job's viewer sessions: one row per (stream, viewer, session).
pub const VIEWER_SESSIONS: &str = "viewer_sessions";
/// Every playback request the origin logged, one row each.
pub const PLAYBACK_REQUESTS: &str = "playback_requests";
/// The QoE job's per-minute figures: one row per (minute, stream, rendition,
/// device, cdn, region, network).
pub const QOE_MINUTES: &str = "qoe_minutes";
/// The QoE job's views: one row per playback session of a stream.
pub const QOE_VIEWS: &str = "qoe_views";
/// A view over `qoe_views`: views by the minute they began.
pub const QOE_VIEW_MINUTES: &str = "qoe_view_minutes";
/// Migrations applied so far, written by `livepulse migrate`.
pub const SCHEMA_MIGRATIONS: &str = "schema_migrations";

/// Every table (and view) the migrations create.
pub const ALL: [&str; 8] = [
    EVENTS,
    STREAM_ENGAGEMENT,
    VIEWER_SESSIONS,
    PLAYBACK_REQUESTS,
    QOE_MINUTES,
    QOE_VIEWS,
    QOE_VIEW_MINUTES,
    SCHEMA_MIGRATIONS,
];
