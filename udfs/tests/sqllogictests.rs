//! Runs every `tests/sql/*.slt` file against a fresh DataFusion
//! `SessionContext` with the livepulse UDFs registered.
//!
//! Result columns are typed (`I` integers, `R` floats and decimals, `T`
//! strings, `?` anything else) and the types are checked. Floats print with
//! at most 9 decimals, trailing zeros dropped (`80`, `85.355339059`), so the
//! files stay readable and do not depend on the last bit of `exp`/`sqrt`.
//! NULL prints as `NULL`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner, strict_column_validator};

struct DataFusionDb {
    ctx: SessionContext,
}

#[async_trait]
impl AsyncDB for DataFusionDb {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>> {
        let frame = self.ctx.sql(sql).await?;
        let types: Vec<_> = frame
            .schema()
            .fields()
            .iter()
            .map(|field| column_type(field.data_type()))
            .collect();
        let batches = frame.collect().await?;
        // DDL answers with an empty schema.
        if types.is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let mut rows = Vec::new();
        for batch in &batches {
            let columns = batch
                .columns()
                .iter()
                .map(|column| render(column.as_ref()))
                .collect::<Result<Vec<_>>>()?;
            for row in 0..batch.num_rows() {
                rows.push(columns.iter().map(|column| column[row].clone()).collect());
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "datafusion"
    }
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating() || data_type.is_decimal() {
        DefaultColumnType::FloatingPoint
    } else if matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        DefaultColumnType::Text
    } else {
        DefaultColumnType::Any
    }
}

fn render(column: &dyn Array) -> Result<Vec<String>> {
    if let Some(floats) = column.as_primitive_opt::<Float64Type>() {
        return Ok(floats
            .iter()
            .map(|value| value.map_or_else(|| "NULL".to_owned(), render_float))
            .collect());
    }
    let options = FormatOptions::default().with_null("NULL");
    let formatter = ArrayFormatter::try_new(column, &options)?;
    Ok((0..column.len())
        .map(|row| formatter.value(row).to_string())
        .collect())
}

fn render_float(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string(); // NaN, inf, -inf
    }
    let fixed = format!("{value:.9}");
    let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
    if trimmed == "-0" { "0" } else { trimmed }.to_owned()
}

async fn run_file(path: &Path) -> Result<(), String> {
    let mut runner = Runner::new(|| async {
        let ctx = SessionContext::new();
        livepulse_udfs::datafusion::register_all(&ctx);
        Ok(DataFusionDb { ctx })
    });
    runner.with_column_validator(strict_column_validator);
    runner
        .run_file_async(path)
        .await
        .map_err(|error| error.display(false).to_string())
}

/// The libtest arguments a runner passes (cargo test, nextest): `--list`
/// (with `--ignored` for the ignored ones, of which there are none), name
/// filters, and `--exact`.
struct Args {
    list: bool,
    ignored: bool,
    exact: bool,
    filters: Vec<String>,
}

impl Args {
    fn parse() -> Self {
        let mut args = Args {
            list: false,
            ignored: false,
            exact: false,
            filters: Vec::new(),
        };
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--list" => args.list = true,
                "--ignored" => args.ignored = true,
                "--exact" => args.exact = true,
                flag if flag.starts_with('-') => {} // --nocapture, --format terse, ...
                filter => args.filters.push(filter.to_owned()),
            }
        }
        args
    }

    fn selects(&self, name: &str) -> bool {
        self.filters.is_empty()
            || self.filters.iter().any(|filter| {
                if self.exact {
                    name == filter
                } else {
                    name.contains(filter.as_str())
                }
            })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .expect("tests/sql is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "slt"))
        .map(|path| {
            (
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                path,
            )
        })
        .filter(|(name, _)| args.selects(name))
        .collect();
    files.sort();
    if args.list {
        if !args.ignored {
            for (name, _) in &files {
                println!("{name}: test");
            }
        }
        return ExitCode::SUCCESS;
    }
    assert!(
        !files.is_empty(),
        "no .slt file in {} matches",
        dir.display()
    );

    let (mut passed, mut failed) = (0, 0);
    for (name, file) in &files {
        match run_file(file).await {
            Ok(()) => {
                passed += 1;
                println!("sqllogictest {name} ... ok");
            }
            Err(error) => {
                failed += 1;
                println!("sqllogictest {name} ... FAILED\n{error}");
            }
        }
    }
    println!("sqllogictest: {passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
