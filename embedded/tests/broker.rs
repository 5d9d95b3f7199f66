//! The local tansu broker, as a real process.

use std::path::Path;
use std::time::{Duration, Instant};

use livepulse_embedded::EmbeddedError;
use livepulse_embedded::broker::LocalBroker;
use livepulse_embedded::install;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a Kafka ApiVersions v0 request and returns (correlation id, error code)
/// of the response, proving a Kafka-protocol broker answers on the port.
async fn api_versions(bootstrap: &str) -> (i32, i16) {
    let mut stream = TcpStream::connect(bootstrap).await.unwrap();
    let client_id = b"livepulse-test";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // api key: ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // api version 0
    body.extend_from_slice(&4242i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    stream
        .write_all(&(body.len() as i32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&body).await.unwrap();
    let size = stream.read_i32().await.unwrap();
    assert!(size >= 6, "response too short: {size} bytes");
    let correlation = stream.read_i32().await.unwrap();
    let error = stream.read_i16().await.unwrap();
    (correlation, error)
}

async fn assert_refused(bootstrap: &str) {
    let err = TcpStream::connect(bootstrap).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn starts_answers_kafka_stops_and_restarts_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path(), 0).await.unwrap();
    let bootstrap = broker.bootstrap_servers();
    let port = broker.port();
    assert_eq!(bootstrap, format!("127.0.0.1:{port}"));
    assert_ne!(port, 0);
    assert_eq!(api_versions(&bootstrap).await, (4242, 0));
    assert!(
        dir.path().join("tansu.db").is_file(),
        "sqlite storage not in the data dir"
    );
    assert!(
        dir.path().join("tansu.log").is_file(),
        "no log file in the data dir"
    );

    let began = Instant::now();
    broker.stop().await.unwrap();
    let took = began.elapsed();
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    assert_refused(&bootstrap).await;

    // Same data dir, same port.
    let again = LocalBroker::start(dir.path(), port).await.unwrap();
    assert_eq!(again.bootstrap_servers(), bootstrap);
    assert_eq!(api_versions(&bootstrap).await, (4242, 0));
    again.stop().await.unwrap();
    assert_refused(&bootstrap).await;
}

#[tokio::test]
async fn restarts_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let broker = LocalBroker::start(dir.path(), 0).await.unwrap();
    let port = broker.port();
    let pid = broker.pid();
    broker.kill().await.unwrap();
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still exists"
    );
    assert_refused(&format!("127.0.0.1:{port}")).await;

    let again = LocalBroker::start(dir.path(), port).await.unwrap();
    assert_eq!(api_versions(&again.bootstrap_servers()).await, (4242, 0));
    again.stop().await.unwrap();
}

#[tokio::test]
async fn dropping_the_broker_kills_it() {
    let (dir, broker) = livepulse_embedded::testing::broker().await;
    let pid = broker.pid();
    let bootstrap = broker.bootstrap_servers();
    drop(broker);
    // tokio reaps the killed child in the background.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} survived drop"
    );
    assert_refused(&bootstrap).await;
    drop(dir);
}

#[tokio::test]
async fn a_taken_port_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let err = LocalBroker::start(dir.path(), port).await.unwrap_err();
    assert!(
        matches!(err, EmbeddedError::PortInUse { port: p, what: "tansu" } if p == port),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("port 127.0.0.1:{port} is already in use (needed by tansu)")
    );
}

#[tokio::test]
async fn installing_an_installed_tansu_does_nothing() {
    let installed = install::tansu_binary().expect("run dev/setup first");
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let progress = |_: &str| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    };
    let path = install::install_tansu(&progress).await.unwrap();
    assert_eq!(path, installed);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 0);
}
