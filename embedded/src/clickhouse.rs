//! A private ClickHouse server (Debian's clickhouse-server 18.16 or newer)
//! with its own config, data and credentials in one directory.
//!
//! Layout of the data directory:
//!
//! | path | content |
//! |------|---------|
//! | `config.xml`, `users.xml` | written on every start (ports may change) |
//! | `credentials` | the generated passwords, mode 0600, kept across restarts |
//! | `data/` | databases and tables |
//! | `log/` | server log, error log, console output |
//! | `tmp/`, `user_files/`, `format_schemas/` | server scratch space |

use std::fmt;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio::time::timeout;

use crate::EmbeddedError;
use crate::install::clickhouse_binary;
use crate::process::{Server, absolute, create_dir, resolve_port};

/// The read-write user (DDL allowed).
pub const WRITER_USER: &str = "livepulse";
/// The read-only user (`readonly = 2`: SELECT only, settings may be changed).
pub const ANALYST_USER: &str = "analyst";

/// How long the server gets to answer `/ping` (it usually needs ~0.2 s).
const START_TIMEOUT: Duration = Duration::from_secs(30);
const CREDENTIALS_FILE: &str = "credentials";

/// A user name and its password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The ClickHouse user.
    pub user: String,
    /// Its plaintext password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A running private clickhouse-server on `127.0.0.1`. The process is killed
/// when this value is dropped; call [`LocalClickHouse::stop`] for a clean
/// shutdown.
///
/// ```no_run
/// # async fn demo() -> Result<(), livepulse_embedded::EmbeddedError> {
/// use livepulse_embedded::clickhouse::LocalClickHouse;
///
/// let ch = LocalClickHouse::start(std::path::Path::new("/tmp/clickhouse"), 0).await?;
/// let (url, writer) = (ch.http_url(), ch.writer());
/// println!("{url} as {}", writer.user);
/// ch.stop().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LocalClickHouse {
    server: Server,
    http_port: u16,
    tcp_port: u16,
    data_dir: PathBuf,
    writer: Credentials,
    analyst: Credentials,
}

impl LocalClickHouse {
    /// Writes `config.xml` and `users.xml` under `data_dir` (created if
    /// missing), starts clickhouse-server with HTTP on `127.0.0.1:http_port`
    /// (0 picks a free port) and returns once `GET /ping` answers.
    ///
    /// Users: `livepulse` (read-write, DDL allowed) and `analyst` (read-only:
    /// `readonly = 2`, so clients may still send settings such as
    /// `wait_end_of_query`). Their passwords are random, generated on the
    /// first start and reused from `<data_dir>/credentials` afterwards; only
    /// SHA-256 hashes go into `users.xml`. The built-in `default` user does
    /// not exist. The `livepulse` database is not created here.
    pub async fn start(data_dir: &Path, http_port: u16) -> Result<Self, EmbeddedError> {
        let binary = clickhouse_binary().ok_or(EmbeddedError::ClickHouseNotInstalled)?;
        create_dir(data_dir)?;
        let dir = absolute(data_dir)?;
        for sub in ["data", "tmp", "user_files", "format_schemas", "log"] {
            create_dir(&dir.join(sub))?;
        }
        let (writer, analyst) = load_or_create_credentials(&dir.join(CREDENTIALS_FILE))?;
        let http_port = resolve_port(http_port, "clickhouse-server")?;
        let tcp_port = resolve_port(0, "clickhouse-server")?;
        let interserver_port = resolve_port(0, "clickhouse-server")?;
        let config = dir.join("config.xml");
        write_private(
            &config,
            &config_xml(&dir, http_port, tcp_port, interserver_port),
        )?;
        write_private(&dir.join("users.xml"), &users_xml(&writer, &analyst))?;

        let mut cmd = Command::new(&binary);
        cmd.current_dir(&dir)
            .arg(format!("--config-file={}", config.display()));
        let log_dir = dir.join("log");
        let console = log_dir.join("console.log");
        let logs = vec![log_dir.join("clickhouse-server.err.log"), console.clone()];
        let mut server = Server::spawn("clickhouse-server", cmd, &console, logs)?;
        tracing::debug!(pid = server.pid(), http_port, data_dir = %dir.display(), "starting clickhouse-server");
        let ready = server
            .wait_ready(START_TIMEOUT, || pings(http_port))
            .await?;
        if !ready {
            return Err(EmbeddedError::ClickHouseStartTimeout {
                port: http_port,
                secs: START_TIMEOUT.as_secs(),
                log: server.log_tail(),
            });
        }
        tracing::info!(pid = server.pid(), http_port, "clickhouse-server ready");
        Ok(Self {
            server,
            http_port,
            tcp_port,
            data_dir: dir,
            writer,
            analyst,
        })
    }

    /// The HTTP interface: `"http://127.0.0.1:PORT"`.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The HTTP port.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The native-protocol port (for `clickhouse-client --port`).
    pub fn tcp_port(&self) -> u16 {
        self.tcp_port
    }

    /// The data directory (absolute).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The read-write user `livepulse`.
    pub fn writer(&self) -> &Credentials {
        &self.writer
    }

    /// The read-only user `analyst`.
    pub fn analyst(&self) -> &Credentials {
        &self.analyst
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    /// Kills the server with SIGKILL, as a crash would, and waits until it is
    /// gone. For crash tests.
    pub async fn kill(mut self) -> Result<(), EmbeddedError> {
        self.server.kill().await
    }

    /// Stops the server: SIGTERM, then SIGKILL if it is still running 10 s later.
    pub async fn stop(self) -> Result<(), EmbeddedError> {
        self.server.terminate().await
    }
}

/// Whether `GET /ping` on `127.0.0.1:port` answers `Ok.`. A hand-written
/// HTTP/1.0 request keeps an HTTP client out of this library.
async fn pings(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /ping HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match timeout(Duration::from_secs(2), attempt).await {
        Ok(Ok(response)) => {
            let text = String::from_utf8_lossy(&response);
            text.starts_with("HTTP/1.") && text.contains(" 200 ") && text.ends_with("\r\n\r\nOk.\n")
        }
        _ => false,
    }
}

fn load_or_create_credentials(path: &Path) -> Result<(Credentials, Credentials), EmbeddedError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_credentials(path, &text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let writer = Credentials {
                user: WRITER_USER.to_string(),
                password: random_password()?,
            };
            let analyst = Credentials {
                user: ANALYST_USER.to_string(),
                password: random_password()?,
            };
            let text = format!(
                "# Passwords of the local ClickHouse users, generated on first start.\n\
                 {}={}\n{}={}\n",
                writer.user, writer.password, analyst.user, analyst.password
            );
            write_private(path, &text)?;
            Ok((writer, analyst))
        }
        Err(source) => Err(EmbeddedError::Io {
            action: "cannot read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse_credentials(path: &Path, text: &str) -> Result<(Credentials, Credentials), EmbeddedError> {
    let bad = |reason: String| EmbeddedError::BadCredentials {
        path: path.to_path_buf(),
        reason,
    };
    let find = |user: &str| -> Result<Credentials, EmbeddedError> {
        let password = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .find(|(name, _)| name.trim() == user)
            .map(|(_, password)| password.trim())
            .ok_or_else(|| bad(format!("no line `{user}=<password>`")))?;
        // Passwords end up in XML and HTTP headers: keep them to plain hex-like text.
        if password.is_empty() || !password.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad(format!(
                "the password of `{user}` must be non-empty ASCII letters and digits"
            )));
        }
        Ok(Credentials {
            user: user.to_string(),
            password: password.to_string(),
        })
    };
    Ok((find(WRITER_USER)?, find(ANALYST_USER)?))
}

/// 128 random bits from the kernel, as 32 hex digits.
fn random_password() -> Result<String, EmbeddedError> {
    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 16];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|source| EmbeddedError::Io {
            action: "cannot read",
            path: path.to_path_buf(),
            source,
        })?;
    Ok(hex(&bytes))
}

fn sha256_hex(password: &str) -> String {
    hex(&Sha256::digest(password.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `text` to `path` readable by the owner only (it holds secrets or hashes).
fn write_private(path: &Path, text: &str) -> Result<(), EmbeddedError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| EmbeddedError::Io {
            action: "cannot write",
            path: path.to_path_buf(),
            source,
        })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn config_xml(dir: &Path, http_port: u16, tcp_port: u16, interserver_port: u16) -> String {
    // ClickHouse wants directory paths with a trailing slash.
    let sub = |name: &str| xml_escape(&format!("{}/", dir.join(name).display()));
    let file = |name: &str| xml_escape(&dir.join(name).display().to_string());
    format!(
        r#"<?xml version="1.0"?>
<!-- Written by livepulse on every start; edits are overwritten. -->
<yandex>
    <logger>
        <level>warning</level>
        <log>{log}</log>
        <errorlog>{errorlog}</errorlog>
        <size>10M</size>
        <count>3</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>{interserver_port}</interserver_http_port>
    <max_connections>1024</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <path>{path}</path>
    <tmp_path>{tmp}</tmp_path>
    <user_files_path>{user_files}</user_files_path>
    <format_schema_path>{format_schemas}</format_schema_path>
    <users_config>{users}</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
</yandex>
"#,
        log = file("log/clickhouse-server.log"),
        errorlog = file("log/clickhouse-server.err.log"),
        path = sub("data"),
        tmp = sub("tmp"),
        user_files = sub("user_files"),
        format_schemas = sub("format_schemas"),
        users = file("users.xml"),
    )
}

fn users_xml(writer: &Credentials, analyst: &Credentials) -> String {
    let user = |c: &Credentials, profile: &str| {
        format!(
            r#"        <{name}>
            <password_sha256_hex>{hash}</password_sha256_hex>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>{profile}</profile>
            <quota>default</quota>
        </{name}>
"#,
            name = c.user,
            hash = sha256_hex(&c.password),
        )
    };
    format!(
        r#"<?xml version="1.0"?>
<!-- Written by livepulse on every start; edits are overwritten. -->
<yandex>
    <profiles>
        <default>
            <!-- 18.16 only accepts LowCardinality columns with this; newer servers treat it as obsolete and ignore it. -->
            <allow_experimental_low_cardinality_type>1</allow_experimental_low_cardinality_type>
        </default>
        <readonly>
            <profile>default</profile>
            <!-- 2, not 1: the HTTP client sends settings (wait_end_of_query) with every query. -->
            <readonly>2</readonly>
        </readonly>
    </profiles>
    <users>
{writer}{analyst}    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"#,
        writer = user(writer, "default"),
        analyst = user(analyst, "readonly"),
    )
}
