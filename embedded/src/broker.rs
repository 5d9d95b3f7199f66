//! A local tansu broker (Kafka wire protocol, sqlite storage).
//!
//! tansu 0.6.0 is a test broker with known limits: no transactions, deleting
//! one topic deletes all topics, snappy batches are unreadable, and the
//! partitions of a consumer that dies without leaving its group are not
//! reassigned. Production deployments use Apache Kafka, Redpanda or a managed
//! Kafka instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

use crate::EmbeddedError;
use crate::install::tansu_binary;
use crate::process::{Server, absolute, create_dir, resolve_port};

/// How long tansu gets to accept connections (it usually needs under 0.5 s).
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// The sqlite database inside the data directory.
const DB_FILE: &str = "tansu.db";
/// tansu's stdout and stderr, inside the data directory.
const LOG_FILE: &str = "tansu.log";

/// A running tansu broker on `127.0.0.1`, storing everything in
/// `<data_dir>/tansu.db`. The process is killed when this value is dropped;
/// call [`LocalBroker::stop`] for a clean shutdown.
///
/// ```no_run
/// # async fn demo() -> Result<(), livepulse_embedded::EmbeddedError> {
/// use livepulse_embedded::broker::LocalBroker;
///
/// let broker = LocalBroker::start(std::path::Path::new("/tmp/broker"), 0).await?;
/// let brokers = broker.bootstrap_servers(); // "127.0.0.1:PORT"
/// broker.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LocalBroker {
    server: Server,
    port: u16,
    data_dir: PathBuf,
}

impl LocalBroker {
    /// Starts tansu with sqlite storage in `data_dir` (created if missing) on
    /// `127.0.0.1:port` (0 picks a free port) and returns once the port
    /// accepts connections. Restarting on the same `data_dir` keeps topics,
    /// records and committed offsets.
    pub async fn start(data_dir: &Path, port: u16) -> Result<Self, EmbeddedError> {
        let binary = tansu_binary().ok_or(EmbeddedError::TansuNotInstalled)?;
        create_dir(data_dir)?;
        let data_dir = absolute(data_dir)?;
        let port = resolve_port(port, "tansu")?;
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(&binary);
        // The sqlite URL is relative to the working directory.
        cmd.current_dir(&data_dir)
            .arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &format!("sqlite://{DB_FILE}")])
            .arg("--silent");
        let log = data_dir.join(LOG_FILE);
        let mut server = Server::spawn("tansu", cmd, &log, vec![log.clone()])?;
        tracing::debug!(pid = server.pid(), port, data_dir = %data_dir.display(), "starting tansu");
        let ready = server.wait_ready(START_TIMEOUT, || accepts(port)).await?;
        if !ready {
            return Err(EmbeddedError::BrokerStartTimeout {
                port,
                secs: START_TIMEOUT.as_secs(),
                log: server.log_tail(),
            });
        }
        tracing::info!(pid = server.pid(), port, "tansu broker ready");
        Ok(Self {
            server,
            port,
            data_dir,
        })
    }

    /// The Kafka bootstrap servers: `"127.0.0.1:PORT"`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The listener port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory (absolute).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Kills the broker with SIGKILL, as a crash would, and waits until it is
    /// gone. For crash tests: start a new broker on the same `data_dir` and
    /// port afterwards.
    pub async fn kill(mut self) -> Result<(), EmbeddedError> {
        self.server.kill().await
    }

    /// Stops the broker: SIGTERM, then SIGKILL if it is still running 10 s later.
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        self.server.terminate().await
    }
}

/// Whether something accepts TCP connections on `127.0.0.1:port`.
async fn accepts(port: u16) -> bool {
    matches!(
        timeout(
            Duration::from_secs(1),
            TcpStream::connect(("127.0.0.1", port))
        )
        .await,
        Ok(Ok(_))
    )
}
