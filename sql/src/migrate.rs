//! The migrator: applies the migrations a database has not seen yet.

use std::fmt;

use clickhouse::Row;
use livepulse_connectors::ConfigError;
use livepulse_connectors::clickhouse::ClickHouseConfig;
use livepulse_contract::tables::SCHEMA_MIGRATIONS;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::migrations::{MIGRATIONS, Migration, added_column};

/// Why [`migrate`] stopped.
#[derive(Debug, Error)]
pub enum MigrateError {
    /// The ClickHouse settings cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The migration list given to [`migrate_with`] is not in strictly
    /// increasing version order.
    #[error("migration {version} ({name}) is out of order: versions must increase strictly")]
    OutOfOrder {
        /// Its version.
        version: u32,
        /// Its name.
        name: String,
    },
    /// A migration already applied to the database has since been edited.
    #[error(
        "migration {version:04}_{name} was edited after it was applied (recorded checksum {recorded}, \
         the file now has {current}); put schema changes in a new migration instead"
    )]
    Edited {
        /// Its version.
        version: u32,
        /// Its name.
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of the text this build carries.
        current: String,
    },
    /// The database has a migration this build does not know: a newer
    /// livepulse migrated it.
    #[error(
        "the database has migration {version:04}_{name}, which this build does not know: \
         it was migrated by a newer livepulse"
    )]
    Unknown {
        /// Its version.
        version: u32,
        /// Its name.
        name: String,
    },
    /// A statement failed on the server.
    #[error("{action}: {source}")]
    ClickHouse {
        /// What was being done, e.g. `migration 0001_events, statement 1`.
        action: String,
        /// The server's or the client's error.
        #[source]
        source: clickhouse::error::Error,
    },
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The database migrated.
    pub database: String,
    /// Migrations applied by this run, in order.
    pub applied: Vec<AppliedMigration>,
    /// How many migrations the database had already.
    pub already_applied: usize,
}

/// One line for people, e.g. `ClickHouse database livepulse: applied
/// 0001_events, 0002_stream_engagement (0 already applied)`.
impl fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClickHouse database {}: ", self.database)?;
        if self.applied.is_empty() {
            return write!(
                f,
                "up to date ({} migrations applied earlier)",
                self.already_applied
            );
        }
        let applied: Vec<String> = self
            .applied
            .iter()
            .map(|m| format!("{:04}_{}", m.version, m.name))
            .collect();
        write!(
            f,
            "applied {} ({} already applied)",
            applied.join(", "),
            self.already_applied
        )
    }
}

/// One migration applied by a [`migrate`] run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: u32,
    /// Its name.
    pub name: String,
    /// How many statements it ran.
    pub statements: usize,
}

/// A row of `schema_migrations`.
#[derive(Debug, Row, Serialize, Deserialize)]
struct MigrationRecord {
    version: u32,
    name: String,
    checksum: String,
    applied_ms: i64,
}

/// The DDL of `schema_migrations`, which the migrator creates before
/// anything else (it is not itself a migration).
pub fn schema_migrations_ddl() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {SCHEMA_MIGRATIONS} \
         (version UInt32, name String, checksum String, applied_ms Int64) \
         ENGINE = MergeTree() ORDER BY version"
    )
}

/// Brings the database up to date with [`MIGRATIONS`]: see [`migrate_with`].
pub async fn migrate(cfg: &ClickHouseConfig) -> Result<MigrationReport, MigrateError> {
    migrate_with(cfg, MIGRATIONS).await
}

/// Creates `cfg.database` if missing, creates `schema_migrations`, then
/// applies each of `migrations` not recorded there yet, in version order and
/// statement by statement, recording each with its checksum once all its
/// statements succeeded.
///
/// Nothing is applied when an already-applied migration was edited
/// ([`MigrateError::Edited`]) or the database knows a migration this list
/// lacks ([`MigrateError::Unknown`]). Running it again applies nothing.
///
/// ClickHouse has no transactional DDL: a migration that fails half-way
/// stays unrecorded and is re-run from its first statement next time, which
/// is why every statement is `IF NOT EXISTS`, or adds one column and is
/// skipped when the column exists. Run one migrator at a time.
pub async fn migrate_with(
    cfg: &ClickHouseConfig,
    migrations: &[Migration],
) -> Result<MigrationReport, MigrateError> {
    cfg.validate()?;
    for pair in migrations.windows(2) {
        if pair[1].version <= pair[0].version {
            return Err(MigrateError::OutOfOrder {
                version: pair[1].version,
                name: pair[1].name.to_owned(),
            });
        }
    }
    let failed = |action: String| {
        move |source: clickhouse::error::Error| MigrateError::ClickHouse { action, source }
    };

    let create_database = format!("CREATE DATABASE IF NOT EXISTS {}", cfg.database);
    cfg.server_client()
        .query_raw(&create_database)
        .execute()
        .await
        .map_err(failed(format!("create database {}", cfg.database)))?;
    let client = cfg.client();
    client
        .query_raw(&schema_migrations_ddl())
        .execute()
        .await
        .map_err(failed(format!("create table {SCHEMA_MIGRATIONS}")))?;

    let recorded: Vec<MigrationRecord> = client
        .query_raw(&format!(
            "SELECT version, name, checksum, applied_ms FROM {SCHEMA_MIGRATIONS} ORDER BY version"
        ))
        .fetch_all()
        .await
        .map_err(failed(format!("read {SCHEMA_MIGRATIONS}")))?;
    for record in &recorded {
        let Some(migration) = migrations.iter().find(|m| m.version == record.version) else {
            return Err(MigrateError::Unknown {
                version: record.version,
                name: record.name.clone(),
            });
        };
        let current = migration.checksum();
        if record.checksum != current {
            return Err(MigrateError::Edited {
                version: migration.version,
                name: migration.name.to_owned(),
                recorded: record.checksum.clone(),
                current,
            });
        }
    }

    let mut report = MigrationReport {
        database: cfg.database.clone(),
        applied: Vec::new(),
        already_applied: 0,
    };
    for migration in migrations {
        if recorded.iter().any(|r| r.version == migration.version) {
            report.already_applied += 1;
            continue;
        }
        let statements = migration.statements();
        for (n, statement) in statements.iter().enumerate() {
            let action = || format!("migration {}, statement {}", migration.file_stem(), n + 1);
            if let Some((table, column)) = added_column(statement) {
                let exists: u64 = client
                    .query(
                        "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
                    )
                    .bind(&cfg.database)
                    .bind(table)
                    .bind(column)
                    .fetch_one()
                    .await
                    .map_err(failed(action()))?;
                if exists > 0 {
                    continue;
                }
            }
            client
                .query_raw(statement)
                .execute()
                .await
                .map_err(failed(action()))?;
        }
        record_applied(&client, migration)
            .await
            .map_err(failed(format!(
                "record migration {}",
                migration.file_stem()
            )))?;
        tracing::info!(
            version = migration.version,
            name = migration.name,
            statements = statements.len(),
            "applied migration"
        );
        report.applied.push(AppliedMigration {
            version: migration.version,
            name: migration.name.to_owned(),
            statements: statements.len(),
        });
    }
    Ok(report)
}

async fn record_applied(
    client: &clickhouse::Client,
    migration: &Migration,
) -> clickhouse::error::Result<()> {
    let applied_ms = livepulse_contract::now_ms();
    let mut insert = client.insert::<MigrationRecord>(SCHEMA_MIGRATIONS).await?;
    insert
        .write(&MigrationRecord {
            version: migration.version,
            name: migration.name.to_owned(),
            checksum: migration.checksum(),
            applied_ms,
        })
        .await?;
    insert.end().await
}
