//! The same schema, data and analyst queries on ClickHouse 18.16 (the
//! embedded server) and on a current engine (PyPI `chdb-core`, 26.x,
//! in-process via `tests/chdb_dialect.py`): the answers must be identical.
//!
//! Results are compared as TabSeparatedWithNamesAndTypes, so column names
//! and types must agree too (RowBinary readers depend on the types). Every
//! analyst query uses exact functions (count, sum, max, uniqExact, argMax,
//! round), so the comparison is exact, text for text. Approximate ones
//! (uniq, quantile) could differ between versions and would need a
//! tolerance here.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{DATABASE, bound, load, now_minute, sample, server};
use livepulse_contract::tables;
use livepulse_sql::{MIGRATIONS, QUERIES, migrate, schema_migrations_ddl};
use serde_json::{Value, json};

/// The format both sides answer in.
const FORMAT: &str = "TabSeparatedWithNamesAndTypes";

async fn text(query: clickhouse::query::Query, format: &str) -> String {
    let bytes = query.fetch_bytes(format).unwrap().collect().await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// 18.16 names the server time zone in some result types
/// (`DateTime('Etc/UTC')` from toStartOfMinute) where newer servers say
/// `DateTime`; both are the same UInt32 on the wire.
fn without_time_zones(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("DateTime(\\'") {
        out.push_str(&rest[..at + "DateTime".len()]);
        let after = &rest[at..];
        let end = after.find("\\')").expect("a closed DateTime time zone") + "\\')".len();
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Runs the job through chdb; fails loudly when Python or chdb-core is missing.
fn run_chdb(job: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let job_path = dir.path().join("job.json");
    let results_path = dir.path().join("results.json");
    std::fs::write(&job_path, serde_json::to_vec(job).unwrap()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/chdb_dialect.py");
    let output = match Command::new("python3")
        .arg(script)
        .arg(&job_path)
        .arg(&results_path)
        .env("TZ", "UTC")
        .output()
    {
        Ok(output) => output,
        Err(err) => {
            panic!("cannot run python3 ({err}): install Python 3, then `pip install chdb-core`")
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(3) => {
            panic!("the modern-dialect check needs chdb-core: `pip install chdb-core`\n{stderr}")
        }
        _ => panic!(
            "tests/chdb_dialect.py failed ({}):\n{stderr}",
            output.status
        ),
    }
    serde_json::from_slice(&std::fs::read(&results_path).unwrap()).unwrap()
}

#[tokio::test]
async fn modern_clickhouse_gives_the_same_answers() {
    let (_dir, _ch, cfg) = server().await;
    migrate(&cfg).await.unwrap();
    let batches = sample(now_minute());
    load(&cfg, &batches).await;
    let client = cfg.client();

    let mut queries = Vec::new();
    let mut old_results = BTreeMap::new();
    for query in QUERIES {
        let q = bound(&client, query);
        queries.push(json!({ "name": query.name, "sql": q.sql_display().to_string() }));
        let result = text(q, FORMAT).await;
        assert!(
            result.lines().count() > 2,
            "{} returned no rows on 18.16",
            query.name
        );
        old_results.insert(query.name.to_owned(), result);
    }
    let mut old_columns = BTreeMap::new();
    for table in tables::ALL {
        let describe = text(
            client.query(&format!("DESCRIBE TABLE {table}")),
            "TabSeparated",
        )
        .await;
        let columns: Vec<Vec<&str>> = describe
            .lines()
            .map(|l| l.split('\t').take(2).collect())
            .collect();
        old_columns.insert(table.to_owned(), json!(columns));
    }

    let mut ddl = vec![schema_migrations_ddl()];
    ddl.extend(
        MIGRATIONS
            .iter()
            .flat_map(|m| m.statements())
            .map(str::to_owned),
    );
    let inserts: Vec<Value> = batches
        .iter()
        .map(|b| json!({ "table": b.table(), "rows": b.json_lines() }))
        .collect();
    let job = json!({
        "database": DATABASE,
        "ddl": ddl,
        "inserts": inserts,
        "tables": tables::ALL,
        "queries": queries,
        "format": FORMAT,
    });
    let modern = run_chdb(&job);
    let version = modern["engine_version"].as_str().unwrap();
    assert!(
        version.split('.').next().unwrap().parse::<u32>().unwrap() >= 24,
        "chdb runs ClickHouse {version}"
    );

    let mut expected_tables: Vec<&str> = tables::ALL.to_vec();
    expected_tables.sort_unstable();
    assert_eq!(
        modern["tables"],
        json!(expected_tables),
        "tables on ClickHouse {version}"
    );
    for (table, columns) in &old_columns {
        assert_eq!(
            &modern["columns"][table], columns,
            "columns of {table}: ClickHouse {version} vs 18.16"
        );
    }
    for (name, old) in &old_results {
        let new = modern["results"][name].as_str().unwrap();
        assert_eq!(
            without_time_zones(new),
            without_time_zones(old),
            "{name}: ClickHouse {version} (left) vs 18.16 (right)"
        );
    }
}
