//! Child-process plumbing shared by the broker and ClickHouse: ports, log
//! files, readiness polling and a graceful stop.

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep, timeout};

use crate::EmbeddedError;

/// How long a server gets between SIGTERM and SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of a log quoted in an error.
const LOG_TAIL_LINES: usize = 12;
/// How often readiness is probed.
const POLL: Duration = Duration::from_millis(50);

/// `port`, or a free loopback port when it is 0. A given port is checked to be
/// free so that a stale server on it is reported instead of mistaken for ours.
pub(crate) fn resolve_port(port: u16, what: &'static str) -> Result<u16, EmbeddedError> {
    match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
        Ok(listener) => listener
            .local_addr()
            .map(|addr| addr.port())
            .map_err(EmbeddedError::NoFreePort),
        Err(err) if port != 0 && err.kind() == std::io::ErrorKind::AddrInUse => {
            Err(EmbeddedError::PortInUse { port, what })
        }
        Err(err) => Err(EmbeddedError::NoFreePort(err)),
    }
}

/// Creates `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), EmbeddedError> {
    std::fs::create_dir_all(dir).map_err(|source| EmbeddedError::Io {
        action: "cannot create directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// An absolute form of `dir` (which must exist), so children that change
/// directory and config files that need absolute paths both work.
pub(crate) fn absolute(dir: &Path) -> Result<PathBuf, EmbeddedError> {
    dir.canonicalize().map_err(|source| EmbeddedError::Io {
        action: "cannot resolve directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// The last lines of the given log files, for error messages.
pub(crate) fn log_tail(logs: &[PathBuf]) -> String {
    let mut out = Vec::new();
    for path in logs {
        let tail = read_tail(path);
        if !tail.is_empty() {
            out.push(format!("[{}]\n{tail}", path.display()));
        }
    }
    if out.is_empty() {
        let names: Vec<_> = logs.iter().map(|p| p.display().to_string()).collect();
        format!("(nothing logged in {})", names.join(", "))
    } else {
        out.join("\n")
    }
}

fn read_tail(path: &Path) -> String {
    // Only the end matters and server logs can be large.
    const MAX_BYTES: u64 = 64 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file
        .seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))
        .is_err()
    {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty() && !is_stack_frame(line))
        .collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// ClickHouse logs a numbered stack trace after every error; the frames would
/// push the error messages themselves out of the tail.
fn is_stack_frame(line: &str) -> bool {
    let line = line.trim_start();
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && line[digits..].starts_with(". ")
}

/// A server child process, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    what: &'static str,
    child: Child,
    pid: u32,
    /// Logs quoted when the server fails.
    logs: Vec<PathBuf>,
}

impl Server {
    /// Spawns `cmd` with stdin closed and stdout/stderr appended to `console_log`.
    pub(crate) fn spawn(
        what: &'static str,
        mut cmd: Command,
        console_log: &Path,
        logs: Vec<PathBuf>,
    ) -> Result<Self, EmbeddedError> {
        let open_err = |source| EmbeddedError::Io {
            action: "cannot open log file",
            path: console_log.to_path_buf(),
            source,
        };
        let stdout = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(console_log)
            .map_err(open_err)?;
        let stderr = stdout.try_clone().map_err(open_err)?;
        cmd.stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Out of the terminal's process group: Ctrl-C reaches livepulse
            // only, which stops the server after its clients have closed.
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| EmbeddedError::Spawn {
            program: Path::new(cmd.as_std().get_program()).display().to_string(),
            source,
        })?;
        let pid = child.id().ok_or_else(|| EmbeddedError::Spawn {
            program: what.to_string(),
            source: std::io::Error::other("exited before its pid could be read"),
        })?;
        Ok(Self {
            what,
            child,
            pid,
            logs,
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The last lines of the server's logs.
    pub(crate) fn log_tail(&self) -> String {
        log_tail(&self.logs)
    }

    /// Polls `probe` until it returns true (`Ok(true)`) or `within` passes
    /// (`Ok(false)`); fails as soon as the process exits.
    pub(crate) async fn wait_ready<F, Fut>(
        &mut self,
        within: Duration,
        mut probe: F,
    ) -> Result<bool, EmbeddedError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = Instant::now() + within;
        loop {
            self.fail_if_exited()?;
            if probe().await {
                // The probe may have reached a port the process failed to bind.
                self.fail_if_exited()?;
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            sleep(POLL).await;
        }
    }

    fn fail_if_exited(&mut self) -> Result<(), EmbeddedError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status)),
            Err(source) => Err(self.stop_error(source)),
        }
    }

    fn exited(&self, status: ExitStatus) -> EmbeddedError {
        EmbeddedError::ExitedDuringStartup {
            what: self.what,
            status,
            log: self.log_tail(),
        }
    }

    fn stop_error(&self, source: std::io::Error) -> EmbeddedError {
        EmbeddedError::Stop {
            what: self.what,
            pid: self.pid,
            source,
        }
    }

    /// SIGTERM, then SIGKILL if the process is still there after [`STOP_GRACE`].
    pub(crate) async fn terminate(mut self) -> Result<(), EmbeddedError> {
        if self
            .child
            .try_wait()
            .map_err(|e| self.stop_error(e))?
            .is_some()
        {
            return Ok(());
        }
        // The child is not reaped yet, so its pid cannot have been reused.
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        match signalled {
            Ok(status) if status.success() => match timeout(STOP_GRACE, self.child.wait()).await {
                Ok(result) => {
                    let status = result.map_err(|e| self.stop_error(e))?;
                    tracing::debug!(what = self.what, pid = self.pid, %status, "stopped");
                    return Ok(());
                }
                Err(_) => tracing::warn!(
                    what = self.what,
                    pid = self.pid,
                    "still running {} s after SIGTERM, sending SIGKILL",
                    STOP_GRACE.as_secs()
                ),
            },
            Ok(status) => {
                tracing::warn!(what = self.what, pid = self.pid, %status, "kill -TERM failed, sending SIGKILL")
            }
            Err(err) => {
                tracing::warn!(what = self.what, pid = self.pid, %err, "cannot run kill, sending SIGKILL")
            }
        }
        self.kill().await
    }

    /// SIGKILL and reap.
    pub(crate) async fn kill(&mut self) -> Result<(), EmbeddedError> {
        // tokio refuses to signal a child it has already reaped.
        if self
            .child
            .try_wait()
            .map_err(|e| self.stop_error(e))?
            .is_some()
        {
            return Ok(());
        }
        self.child.kill().await.map_err(|e| self.stop_error(e))
    }
}
