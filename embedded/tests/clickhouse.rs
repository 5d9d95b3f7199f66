//! The private ClickHouse server, as a real process, queried over HTTP the
//! way the `clickhouse` crate does it (credentials in X-ClickHouse-* headers,
//! settings as URL parameters).

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use livepulse_embedded::EmbeddedError;
use livepulse_embedded::clickhouse::{Credentials, LocalClickHouse};

/// Runs `sql` as `user`/`password`; returns the HTTP status and body.
async fn query(url: &str, user: &str, password: &str, sql: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}/?wait_end_of_query=1"))
        .header("X-ClickHouse-User", user)
        .header("X-ClickHouse-Key", password)
        .body(sql.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn run(url: &str, who: &Credentials, sql: &str) -> String {
    let (status, body) = query(url, &who.user, &who.password, sql).await;
    assert_eq!(status, 200, "{sql}: {body}");
    body
}

#[tokio::test]
async fn writer_writes_analyst_only_reads_and_passwords_are_checked() {
    let (_dir, ch) = livepulse_embedded::testing::clickhouse().await;
    let url = ch.http_url();
    assert_eq!(url, format!("http://127.0.0.1:{}", ch.http_port()));
    let (writer, analyst) = (ch.writer(), ch.analyst());
    assert_eq!(writer.user, "livepulse");
    assert_eq!(analyst.user, "analyst");
    assert_eq!(writer.password.len(), 32);
    assert_ne!(writer.password, analyst.password);

    // The migrator creates the database, not the server.
    assert_eq!(
        run(
            &url,
            writer,
            "SELECT count() FROM system.databases WHERE name = 'livepulse'"
        )
        .await,
        "0\n"
    );
    run(&url, writer, "CREATE DATABASE lp_test").await;
    run(
        &url,
        writer,
        "CREATE TABLE lp_test.t (ts DateTime, kind LowCardinality(String), n UInt32) \
         ENGINE = MergeTree PARTITION BY toYYYYMMDD(ts) ORDER BY (kind, ts)",
    )
    .await;
    run(
        &url,
        writer,
        "INSERT INTO lp_test.t VALUES ('2024-01-01 00:00:00', 'chat', 1), \
         ('2024-01-01 00:00:01', 'gift', 2), ('2024-01-02 00:00:00', 'chat', 3)",
    )
    .await;
    // The server runs in UTC (18.16 reports the zone as Etc/UTC).
    assert_eq!(
        run(&url, writer, "SELECT toString(toDateTime(86400))").await,
        "1970-01-02 00:00:00\n"
    );

    assert_eq!(
        run(
            &url,
            analyst,
            "SELECT kind, sum(n) FROM lp_test.t GROUP BY kind ORDER BY kind"
        )
        .await,
        "chat\t4\ngift\t2\n"
    );
    for sql in [
        "INSERT INTO lp_test.t VALUES ('2024-01-01 00:00:00', 'chat', 9)",
        "CREATE TABLE lp_test.u (n UInt32) ENGINE = Memory",
        "CREATE DATABASE lp_other",
        "DROP TABLE lp_test.t",
    ] {
        let (status, body) = query(&url, &analyst.user, &analyst.password, sql).await;
        assert_ne!(status, 200, "analyst ran {sql}");
        assert!(body.contains("readonly"), "{sql}: {body}");
    }
    assert_eq!(
        run(&url, analyst, "SELECT sum(n) FROM lp_test.t").await,
        "6\n"
    );

    let (status, body) = query(&url, &writer.user, "wrong", "SELECT 1").await;
    assert_ne!(status, 200);
    assert!(body.contains("Wrong password for user livepulse"), "{body}");
    let (status, body) = query(&url, &analyst.user, &writer.password, "SELECT 1").await;
    assert_ne!(status, 200);
    assert!(body.contains("Wrong password for user analyst"), "{body}");

    // No open `default` user: anonymous requests are refused.
    let response = reqwest::Client::new()
        .post(&url)
        .body("SELECT 1")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    assert_ne!(status, 200);
    assert!(body.contains("Unknown user default"), "{body}");

    let began = Instant::now();
    ch.stop().await.unwrap();
    let took = began.elapsed();
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    assert!(reqwest::get(format!("{url}/ping")).await.is_err());
}

#[tokio::test]
async fn credentials_and_data_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ch = LocalClickHouse::start(dir.path(), 0).await.unwrap();
    let (writer, analyst) = (ch.writer().clone(), ch.analyst().clone());
    let port = ch.http_port();
    run(&ch.http_url(), &writer, "CREATE DATABASE lp_keep").await;
    run(
        &ch.http_url(),
        &writer,
        "CREATE TABLE lp_keep.t (n UInt64) ENGINE = MergeTree ORDER BY n",
    )
    .await;
    run(
        &ch.http_url(),
        &writer,
        "INSERT INTO lp_keep.t VALUES (1), (2), (3)",
    )
    .await;
    ch.stop().await.unwrap();

    // Plaintext only in the 0600 credentials file, hashes in users.xml.
    let credentials = dir.path().join("credentials");
    let mode = std::fs::metadata(&credentials)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored = std::fs::read_to_string(&credentials).unwrap();
    assert!(stored.contains(&format!("livepulse={}\n", writer.password)));
    assert!(stored.contains(&format!("analyst={}\n", analyst.password)));
    let users = std::fs::read_to_string(dir.path().join("users.xml")).unwrap();
    assert!(!users.contains(&writer.password) && !users.contains(&analyst.password));
    assert_eq!(users.matches("<password_sha256_hex>").count(), 2);

    let again = LocalClickHouse::start(dir.path(), port).await.unwrap();
    assert_eq!(again.http_port(), port);
    assert_eq!(again.writer(), &writer);
    assert_eq!(again.analyst(), &analyst);
    assert_eq!(
        run(&again.http_url(), &analyst, "SELECT sum(n) FROM lp_keep.t").await,
        "6\n"
    );
    again.stop().await.unwrap();
}

#[tokio::test]
async fn a_broken_credentials_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("credentials"), "livepulse=abc\n").unwrap();
    let err = LocalClickHouse::start(dir.path(), 0).await.unwrap_err();
    assert!(
        matches!(err, EmbeddedError::BadCredentials { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("no line `analyst=<password>`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failing_server_reports_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let first = LocalClickHouse::start(dir.path(), 0).await.unwrap();
    // A second server on the same data directory cannot lock it and exits.
    let err = LocalClickHouse::start(dir.path(), 0).await.unwrap_err();
    match &err {
        EmbeddedError::ExitedDuringStartup { what, log, .. } => {
            assert_eq!(*what, "clickhouse-server");
            assert!(
                log.contains("Another server instance in same directory is already running"),
                "{log}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with("clickhouse-server exited during startup"),
        "{err}"
    );
    first.stop().await.unwrap();
}
