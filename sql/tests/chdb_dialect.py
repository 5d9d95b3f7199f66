#!/usr/bin/env python3
"""Runs livepulse's schema and analyst queries on a current ClickHouse engine.

Called by tests/dialect.rs with two paths: a job file (JSON, written by the
test) and where to write the results (JSON). The engine is PyPI `chdb-core`,
ClickHouse in-process, in an on-disk session in a temporary directory.

Job: {"database", "ddl": [statements], "inserts": [{"table", "rows"}],
"tables": [names], "queries": [{"name", "sql"}], "format"}; `rows` is
JSONEachRow, `format` the output format of the queries.
Results: {"engine_version", "tables": [names in the database],
"columns": {table: [[name, type], ...]}, "results": {name: text}}.

Exit status 3 means chdb-core is missing.
"""

import json
import sys
import tempfile


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: chdb_dialect.py JOB.json RESULTS.json", file=sys.stderr)
        return 2
    try:
        from chdb import session
    except ImportError as err:
        print(f"chdb-core is not installed ({err}): run `pip install chdb-core`", file=sys.stderr)
        return 3

    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)

    with tempfile.TemporaryDirectory(prefix="livepulse-chdb-") as data_dir:
        sess = session.Session(data_dir)
        try:
            results = run(sess, job)
        finally:
            sess.close()

    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0


def run(sess, job) -> dict:
    def query(sql: str, fmt: str = "TabSeparated") -> str:
        try:
            return str(sess.query(sql, fmt))
        except Exception as err:  # chdb raises its own error types; name the statement
            raise SystemExit(f"chdb failed on:\n{sql}\n{err}") from err

    database = job["database"]
    query(f"CREATE DATABASE IF NOT EXISTS {database}")
    query(f"USE {database}")
    for statement in job["ddl"]:
        query(statement)
    for insert in job["inserts"]:
        query(f"INSERT INTO {insert['table']} FORMAT JSONEachRow\n{insert['rows']}")

    tables = query(f"SELECT name FROM system.tables WHERE database = '{database}' ORDER BY name").splitlines()
    columns = {}
    for table in job["tables"]:
        rows = query(f"DESCRIBE TABLE {table}").splitlines()
        columns[table] = [row.split("\t")[:2] for row in rows]
    return {
        "engine_version": query("SELECT version()").strip(),
        "tables": tables,
        "columns": columns,
        "results": {q["name"]: query(q["sql"], job["format"]) for q in job["queries"]},
    }


if __name__ == "__main__":
    sys.exit(main())
