//! A private nginx for `bench --origin`: Debian's nginx with the RTMP
//! module, configured in a temporary directory and listening on free
//! loopback ports. RTMP in, HLS out (1 s fragments written into `www`),
//! and plain HTTP serving of `www` under `/hls/`.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tracing::{info, warn};

/// Where Debian's `nginx` package installs the server.
const NGINX: &str = "/usr/sbin/nginx";
/// Where Debian's `libnginx-mod-rtmp` installs the RTMP module.
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
/// The RTMP application; publish to `rtmp://HOST:PORT/live/NAME`.
const RTMP_APP: &str = "live";
/// Worker processes: one per core of the machines the bench runs on.
pub(super) const WORKERS: usize = 2;

/// A running private nginx. Dropping it stops nginx (and its workers).
pub(super) struct Nginx {
    dir: TempDir,
    child: Child,
    /// Its HTTP address: `/hls/...` serves [`Nginx::www`]`/hls/...`.
    pub(super) http: SocketAddr,
    /// Its RTMP address.
    pub(super) rtmp: SocketAddr,
}

impl Nginx {
    /// Fails naming the Debian package when nginx or its RTMP module is
    /// missing.
    pub(super) fn check_installed() -> Result<()> {
        if !Path::new(NGINX).is_file() {
            bail!(
                "{NGINX} not found: install the Debian package `nginx` (`dev/setup --bench` does)"
            );
        }
        if !Path::new(RTMP_MODULE).is_file() {
            bail!(
                "nginx's RTMP module ({RTMP_MODULE}) not found: install the Debian \
                 package `libnginx-mod-rtmp` (`dev/setup --bench` does)"
            );
        }
        Ok(())
    }

    /// Writes the configuration and starts nginx; returns once it accepts
    /// HTTP and RTMP connections.
    pub(super) async fn start() -> Result<Self> {
        Self::check_installed()?;
        let dir = tempfile::tempdir()?;
        let [http, rtmp] = free_ports()?;
        let www = dir.path().join("www");
        std::fs::create_dir_all(www.join("hls").join(RTMP_APP))?;
        // Started as root, nginx's workers run as `nobody`: they must read
        // `www` and the RTMP module must write its fragments.
        for (path, mode) in [
            (dir.path(), 0o755),
            (www.as_path(), 0o755),
            (&www.join("hls"), 0o755),
            (&www.join("hls").join(RTMP_APP), 0o777),
        ] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config(dir.path(), http, rtmp))?;
        let log = dir.path().join("error.log");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {NGINX}"))?;
        let mut nginx = Self {
            dir,
            child,
            http,
            rtmp,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = nginx.child.try_wait()? {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("nginx exited at start ({status}): {}", log.trim());
            }
            if TcpStream::connect(http).await.is_ok() && TcpStream::connect(rtmp).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        info!(%http, %rtmp, dir = %nginx.dir.path().display(), "nginx started");
        Ok(nginx)
    }

    /// The directory served under `/hls/` (as `www/hls/...`).
    pub(super) fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// RTMP publish URL of stream `name`; its HLS playlist is served at
    /// [`Nginx::playlist_path`].
    pub(super) fn rtmp_url(&self, name: &str) -> String {
        format!("rtmp://{}/{RTMP_APP}/{name}", self.rtmp)
    }

    /// HTTP path of the HLS playlist the RTMP module writes for `name`.
    pub(super) fn playlist_path(name: &str) -> String {
        format!("/hls/{RTMP_APP}/{name}.m3u8")
    }

    /// Stops nginx and waits until the master process exited.
    pub(super) async fn stop(mut self) -> Result<()> {
        self.terminate();
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .context("nginx did not stop within 10 s")??;
        Ok(())
    }

    /// SIGTERM to the master, which stops its workers first. (SIGKILL, as
    /// `kill_on_drop` sends, would leave the workers running.)
    fn terminate(&mut self) {
        let Some(pid) = self.child.id() else { return };
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        if !matches!(sent, Ok(status) if status.success()) {
            warn!(pid, "could not signal nginx");
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate();
        }
    }
}

/// Two distinct free loopback ports (bound then released: nginx binds
/// them next).
fn free_ports() -> Result<[SocketAddr; 2]> {
    let first = std::net::TcpListener::bind("127.0.0.1:0")?;
    let second = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok([first.local_addr()?, second.local_addr()?])
}

/// The whole configuration: everything nginx writes stays in `dir`.
fn config(dir: &Path, http: SocketAddr, rtmp: SocketAddr) -> String {
    let dir = dir.display();
    format!(
        r#"daemon off;
master_process on;
worker_processes {WORKERS};
pid "{dir}/nginx.pid";
error_log "{dir}/error.log" warn;
load_module {RTMP_MODULE};

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path "{dir}/client_body";
    proxy_temp_path "{dir}/proxy";
    fastcgi_temp_path "{dir}/fastcgi";
    uwsgi_temp_path "{dir}/uwsgi";
    scgi_temp_path "{dir}/scgi";
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    # As the origin (no limit): the default 1000 would add reconnects to
    # the throughput run.
    keepalive_requests 1000000;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }}
    server {{
        listen {http};
        location /hls/ {{
            root "{dir}/www";
        }}
    }}
}}

rtmp {{
    server {{
        listen {rtmp};
        application {RTMP_APP} {{
            live on;
            hls on;
            hls_path "{dir}/www/hls/{RTMP_APP}";
            hls_fragment 1s;
            hls_playlist_length 4s;
        }}
    }}
}}
"#
    )
}
