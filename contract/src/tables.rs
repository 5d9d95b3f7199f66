//! ClickHouse table names. The migrations in `sql/migrations` create exactly
//! these; a test in the `sql` crate holds the two together.

/// Every accepted event, one row each, partitioned by day.
pub const EVENTS: &str = "events";
/// The engagement job's output: one row per (window, stream).
pub const STREAM_ENGAGEMENT: &str = "stream_engagement";
/// Migrations applied so far, written by `livepulse migrate`.
pub const SCHEMA_MIGRATIONS: &str = "schema_migrations";

/// Every table the migrations create.
pub const ALL: [&str; 3] = [EVENTS, STREAM_ENGAGEMENT, SCHEMA_MIGRATIONS];
