//! livepulse's ClickHouse schema and analyst queries, embedded in the binary.
//!
//! * [`MIGRATIONS`]: the `sql/migrations/NNNN_name.sql` files, applied in
//!   version order by [`migrate`], which records each one (with a checksum of
//!   its text) in `schema_migrations`.
//! * [`EventRow`], [`EngagementRow`] and [`ViewerSessionRow`]: the rows of
//!   the `events`, `stream_engagement` and `viewer_sessions` tables, field
//!   for column, for the clickhouse crate.
//! * [`QUERIES`]: the analyst query library, `sql/queries/*.sql`, with
//!   client-side `?` parameters.
//!
//! Everything here runs unchanged on ClickHouse 18.16 and on current
//! releases: no LowCardinality, TTL, CODEC, DateTime64, Map, window
//! functions or server-side parameters. The tests run the migrations and
//! every query on a real 18.16 server and on chdb (a 26.x engine) and
//! require identical answers.
//!
//! Adding a migration: a new file `sql/migrations/NNNN_name.sql` with the
//! next version; statements separated by `;`, each repeatable (`IF NOT
//! EXISTS`), unqualified table names (the client sets the database). Never
//! edit an applied migration: [`migrate`] refuses a changed checksum.
//!
//! Adding a query: `sql/queries/name.sql`, starting with `-- name:`,
//! `-- description:` and one `-- param: NAME TYPE description` line per `?`
//! placeholder, in bind order; then one statement. Read `events` and
//! `stream_engagement` with `FINAL` (or `argMax(…, version)`), and keep
//! result types the same on old and new servers (wrap a Nullable argument
//! of an aggregate in `ifNull` or `assumeNotNull`: 18.16 would return a
//! Nullable result). The build checks the header and the placeholder count.
//!
//! ```no_run
//! # async fn demo() -> Result<(), livepulse_sql::MigrateError> {
//! use livepulse_connectors::clickhouse::ClickHouseConfig;
//!
//! let cfg = ClickHouseConfig {
//!     url: "http://127.0.0.1:8123".into(),
//!     database: "livepulse".into(),
//!     user: "livepulse".into(),
//!     password: String::new(),
//! };
//! let report = livepulse_sql::migrate(&cfg).await?;
//! println!("applied {} migration(s)", report.applied.len());
//! # Ok(()) }
//! ```

mod migrate;
mod migrations;
mod queries;
mod rows;

pub use migrate::{
    AppliedMigration, MigrateError, MigrationReport, migrate, migrate_with, schema_migrations_ddl,
};
pub use migrations::{MIGRATIONS, Migration, added_column};
pub use queries::{AnalystQuery, QUERIES, QueryParam, query};
pub use rows::{
    EngagementRow, EventRow, PlaybackRequestRow, QoeMinuteRow, QoeViewRow, ViewerSessionRow,
};
