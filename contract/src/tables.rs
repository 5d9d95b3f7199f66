//! ClickHouse table names. The migrations in `sql/migrations` create exactly
//! these; a test in the `sql` crate holds the two together.

/// Every accepted event, one row each, partitioned by day.
pub const EVENTS: &str = "events";
/// The engagement job's output: one row per (window, stream).
pub const STREAM_ENGAGEMENT: &str = "stream_engagement";
/// The engagement job's viewer sessions: one row per (stream, viewer, session).
pub const VIEWER_SESSIONS: &str = "viewer_sessions";
/// Migrations applied so far, written by `livepulse migrate`.
pub const SCHEMA_MIGRATIONS: &str = "schema_migrations";

/// Every table the migrations create.
pub const ALL: [&str; 4] = [
    EVENTS,
    STREAM_ENGAGEMENT,
    VIEWER_SESSIONS,
    SCHEMA_MIGRATIONS,
];
