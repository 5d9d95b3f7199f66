//! Finding and installing the tansu broker and clickhouse-server binaries.

use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::{EmbeddedError, home_dir};

/// The tansu release livepulse is tested against.
pub const TANSU_VERSION: &str = "0.6.0";

/// Output lines kept for the error message of a failed install.
const KEPT_LINES: usize = 20;

/// The tansu binary: `$LIVEPULSE_TANSU`, else `<home>/tools/bin/tansu`, else
/// `tansu` on `PATH`; `None` when none of them exists.
pub fn tansu_binary() -> Option<PathBuf> {
    env_binary("LIVEPULSE_TANSU")
        .or_else(|| executable(&tansu_install_path()))
        .or_else(|| on_path("tansu"))
}

/// Where [`install_tansu`] puts the binary.
fn tansu_install_path() -> PathBuf {
    home_dir().join("tools").join("bin").join("tansu")
}

/// Installs tansu with
/// `cargo install tansu --version 0.6.0 --locked --features libsql --root <home>/tools`
/// (10-16 minutes on two cores), passing each line cargo prints (such as
/// `Compiling tansu v0.6.0`) to `progress`. Does nothing when
/// [`tansu_binary`] already finds one. Returns the binary's path.
///
/// ```no_run
/// # async fn demo() -> Result<(), livepulse_embedded::EmbeddedError> {
/// let tansu = livepulse_embedded::install::install_tansu(&|line| eprintln!("{line}")).await?;
/// # Ok(()) }
/// ```
pub async fn install_tansu(progress: &(dyn Fn(&str) + Sync)) -> Result<PathBuf, EmbeddedError> {
    if let Some(found) = tansu_binary() {
        return Ok(found);
    }
    let root = home_dir().join("tools");
    let mut cmd = Command::new("cargo");
    cmd.args(["install", "tansu", "--version", TANSU_VERSION, "--locked"])
        // Default features build no usable storage engine; libsql gives sqlite://.
        .args(["--features", "libsql", "--root"])
        .arg(&root)
        // A lint wrapper meant for this workspace (dev/test runs clippy as
        // one) would lint tansu as the member of its own build and fail it.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS");
    let command = format!(
        "cargo install tansu --version {TANSU_VERSION} --locked --features libsql --root {}",
        root.display()
    );
    run_streaming(cmd, &command, progress).await?;
    let expected = tansu_install_path();
    executable(&expected).ok_or(EmbeddedError::InstalledBinaryMissing { command, expected })
}

/// The clickhouse-server binary: `$LIVEPULSE_CLICKHOUSE_SERVER`, else
/// `/usr/sbin/clickhouse-server`, else `clickhouse-server` on `PATH`; `None`
/// when none of them exists.
pub fn clickhouse_binary() -> Option<PathBuf> {
    env_binary("LIVEPULSE_CLICKHOUSE_SERVER")
        .or_else(|| executable(Path::new("/usr/sbin/clickhouse-server")))
        .or_else(|| on_path("clickhouse-server"))
}

/// Installs Debian's `clickhouse-server` and `clickhouse-client` with
/// `apt-get update` and `apt-get install -y` (needs root), passing apt's
/// output lines to `progress`. Does nothing when [`clickhouse_binary`]
/// already finds one. Returns the server binary's path.
pub async fn install_clickhouse(
    progress: &(dyn Fn(&str) + Sync),
) -> Result<PathBuf, EmbeddedError> {
    if let Some(found) = clickhouse_binary() {
        return Ok(found);
    }
    // A fresh machine may have no package lists yet.
    let mut update = Command::new("apt-get");
    update
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_streaming(update, "apt-get update", progress).await?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "clickhouse-server", "clickhouse-client"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    let command = "apt-get install -y clickhouse-server clickhouse-client".to_string();
    run_streaming(install, &command, progress).await?;
    clickhouse_binary().ok_or(EmbeddedError::InstalledBinaryMissing {
        command,
        expected: PathBuf::from("/usr/sbin/clickhouse-server"),
    })
}

/// Runs `cmd`, passing every stdout and stderr line to `progress`, and fails
/// with the last lines when it exits unsuccessfully.
async fn run_streaming(
    mut cmd: Command,
    command: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), EmbeddedError> {
    tracing::info!(%command, "installing");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let spawn_err = |source| EmbeddedError::Spawn {
        program: command.to_string(),
        source,
    };
    let mut child = cmd.spawn().map_err(spawn_err)?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(spawn_err(std::io::Error::other("output pipes missing")));
    };
    let mut kept = VecDeque::with_capacity(KEPT_LINES);
    let mut keep = |line: String| {
        let line = line.trim_end();
        if line.is_empty() {
            return;
        }
        progress(line);
        if kept.len() == KEPT_LINES {
            kept.pop_front();
        }
        kept.push_back(line.to_string());
    };
    let mut out = Some(lines(stdout));
    let mut err = Some(lines(stderr));
    // Read both pipes until they close, so neither can fill up and block the child.
    while out.is_some() || err.is_some() {
        tokio::select! {
            line = next_line(&mut out), if out.is_some() => match line {
                Some(line) => keep(line),
                None => out = None,
            },
            line = next_line(&mut err), if err.is_some() => match line {
                Some(line) => keep(line),
                None => err = None,
            },
        }
    }
    let status = child.wait().await.map_err(spawn_err)?;
    if status.success() {
        Ok(())
    } else {
        Err(EmbeddedError::InstallFailed {
            command: command.to_string(),
            status,
            output: Vec::from(kept).join("\n"),
        })
    }
}

type Lines<R> = tokio::io::Lines<BufReader<R>>;

fn lines<R: AsyncRead + Unpin>(reader: R) -> Lines<R> {
    BufReader::new(reader).lines()
}

/// The next line, or `None` at end of stream (an unreadable stream counts as ended).
async fn next_line<R: AsyncRead + Unpin>(lines: &mut Option<Lines<R>>) -> Option<String> {
    match lines {
        Some(lines) => lines.next_line().await.ok().flatten(),
        None => None,
    }
}

fn env_binary(var: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var).filter(|p| !p.is_empty())?;
    executable(Path::new(&path))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find_map(|dir| executable(&dir.join(name)))
}

fn executable(path: &Path) -> Option<PathBuf> {
    let meta = std::fs::metadata(path).ok()?;
    (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then(|| path.to_path_buf())
}
