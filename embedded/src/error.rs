use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong while installing, starting or stopping the
/// local broker and ClickHouse server.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No tansu binary was found.
    #[error("tansu is not installed: run `livepulse install` or dev/setup")]
    TansuNotInstalled,
    /// No clickhouse-server binary was found.
    #[error("clickhouse-server is not installed: run `livepulse install` or dev/setup")]
    ClickHouseNotInstalled,
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "cannot create directory".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A program could not be started at all.
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An installer command ran but failed.
    #[error("`{command}` failed ({status}): {output}")]
    InstallFailed {
        /// The command line that failed.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its last output lines.
        output: String,
    },
    /// An installer command succeeded but the binary is still not where expected.
    #[error("`{command}` succeeded but {} does not exist", expected.display())]
    InstalledBinaryMissing {
        /// The command line that ran.
        command: String,
        /// Where the binary should be.
        expected: PathBuf,
    },
    /// The requested port is taken by another process.
    #[error("port 127.0.0.1:{port} is already in use (needed by {what})")]
    PortInUse {
        /// The port.
        port: u16,
        /// The server that needed it.
        what: &'static str,
    },
    /// No free port could be reserved on loopback.
    #[error("cannot find a free port on 127.0.0.1: {0}")]
    NoFreePort(std::io::Error),
    /// The child process exited before it became ready.
    #[error("{what} exited during startup ({status}): {log}")]
    ExitedDuringStartup {
        /// "tansu" or "clickhouse-server".
        what: &'static str,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its log.
        log: String,
    },
    /// The broker never accepted a TCP connection.
    #[error("broker did not accept connections on 127.0.0.1:{port} within {secs} s; log: {log}")]
    BrokerStartTimeout {
        /// The listener port.
        port: u16,
        /// How long we waited.
        secs: u64,
        /// The last lines of its log.
        log: String,
    },
    /// ClickHouse never answered `GET /ping`.
    #[error(
        "clickhouse-server did not answer GET /ping on 127.0.0.1:{port} within {secs} s; log: {log}"
    )]
    ClickHouseStartTimeout {
        /// The HTTP port.
        port: u16,
        /// How long we waited.
        secs: u64,
        /// The last lines of its error log.
        log: String,
    },
    /// The stored credentials file cannot be used.
    #[error("credentials file {} is malformed: {reason} (delete it to generate new passwords)", path.display())]
    BadCredentials {
        /// The credentials file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Waiting for or signalling the child process failed.
    #[error("cannot stop {what} (pid {pid}): {source}")]
    Stop {
        /// "tansu" or "clickhouse-server".
        what: &'static str,
        /// Its process id.
        pid: u32,
        /// The underlying error.
        source: std::io::Error,
    },
}
