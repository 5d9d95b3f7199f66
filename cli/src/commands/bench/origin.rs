//! livepulse's HLS origin beside nginx with the RTMP module (the usual
//! self-hosted live origin), both measured in the same run on this machine.
//!
//! **Publish-to-playable latency.** One ffmpeg encodes a live test source in
//! real time (`-re`, 720p, 1 s GOPs) and its `tee` muxer hands the same
//! packets to two outputs: RTMP to nginx, whose RTMP module cuts 1 s HLS
//! fragments into a directory the same nginx serves, and right after it
//! HLS over HTTP PUT with 1 s segments to our origin. For each server a
//! poller reads the playlist every 10 ms and fetches every segment listed;
//! a segment is playable when its GET first answers 200. Its media ends at
//! ffmpeg's start plus the playlist's durations up to and including it, so
//! both delays include ffmpeg's start-up, equally.
//!
//! **Segment serving throughput.** ffmpeg encodes 4 renditions x 10 one-second
//! MPEG-TS segments once into nginx's document root; the same files are
//! PUT into our origin. wrk then fetches the 40 segments round-robin (a Lua
//! script) from each server in turn with the same settings. Our origin runs
//! in this process as it ships, logging every request to Kafka (a private
//! broker); nginx runs with 2 worker processes, sendfile and no access
//! log. wrk, the servers and the broker share this machine's cores.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use livepulse_connectors::kafka::{KafkaConfig, ensure_topics};
use livepulse_contract::topics;
use livepulse_embedded::broker::LocalBroker;
use livepulse_ingest::origin::metrics::{ACCESS_DROPPED, ACCESS_PRODUCED, PLAYBACK_REQUESTS};
use livepulse_ingest::origin::{Origin, OriginConfig, StreamKey};
use reqwest::{StatusCode, Url};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::nginx::{Nginx, WORKERS as NGINX_WORKERS};

/// How often the latency pollers read each playlist.
const POLL: Duration = Duration::from_millis(10);
/// The stream published live in the latency run.
const LIVE: &str = "bench-live";
/// The stream of the throughput run's segments.
const VOD: &str = "bench-vod";
/// Renditions of the throughput run: name, size, video bitrate (segments
/// of ~100-400 KB).
const RENDITIONS: [(&str, &str, &str); 4] = [
    ("720p", "1280x720", "3000k"),
    ("540p", "960x540", "2000k"),
    ("360p", "640x360", "1000k"),
    ("240p", "426x240", "700k"),
];
/// Seconds encoded per rendition in the throughput run (1 s segments).
const VOD_SECS: u32 = 10;
/// wrk's settings, the same for both servers.
const WRK: &str = "-t2 -c64 -d10s --timeout 5s";
/// ffmpeg's inputs: a test picture and a tone.
const SOURCE: &str = "-hide_banner -nostdin -loglevel error \
    -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000";
/// x264 with 1 s GOPs, so segments close every second, and AAC.
const ENCODE: &str = "-g 30 -keyint_min 30 -sc_threshold 0 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -ac 2";

/// Runs both measurements (the latency one publishing for `secs`) and
/// prints their figures.
pub(super) async fn run(secs: Duration) -> Result<()> {
    require("ffmpeg", "ffmpeg")?;
    require("wrk", "wrk")?;
    Nginx::check_installed()?;
    let dir = tempfile::tempdir()?;
    let broker = LocalBroker::start(&dir.path().join("broker"), 0).await?;
    let kafka = KafkaConfig::local(broker.bootstrap_servers());
    ensure_topics(&kafka, &topics::ALL).await?;
    let new_key = || format!("sk_{}", uuid::Uuid::new_v4().simple());
    let (live_key, vod_key) = (new_key(), new_key());
    let config = OriginConfig {
        streams: [(&live_key, LIVE), (&vod_key, VOD)]
            .map(|(key, stream_id)| StreamKey {
                key: key.as_str().into(),
                stream_id: stream_id.into(),
                creator_id: "bench".into(),
            })
            .into(),
        ..OriginConfig::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(
        Origin::new(config, &kafka)?.serve(listener, shutdown.clone().cancelled_owned()),
    );
    let nginx = Nginx::start().await?;
    let http = reqwest::Client::new();

    let measured = async {
        latency(&http, &origin, &live_key, &nginx, secs).await?;
        throughput(&http, &origin, &vod_key, &nginx).await
    }
    .await;
    shutdown.cancel();
    served.await??;
    nginx.stop().await?;
    broker.stop().await?;
    measured
}

/// Publishes to both servers for `secs` and prints their
/// publish-to-playable delays.
async fn latency(
    http: &reqwest::Client,
    origin: &str,
    key: &str,
    nginx: &Nginx,
    secs: Duration,
) -> Result<()> {
    // tee hands each packet to its outputs in turn, and the HLS output
    // blocks on its uploads when a segment closes: RTMP goes first so that
    // nginx never waits for our uploads.
    let tee = format!(
        "[f=flv:flvflags=no_duration_filesize]{}|[f=hls:hls_time=1:hls_list_size=4:\
         hls_flags=delete_segments:method=PUT]{origin}/live/{key}/index.m3u8",
        nginx.rtmp_url(LIVE)
    );
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg
        .arg("-re")
        .args(SOURCE.split_whitespace())
        .args(["-map", "0:v", "-map", "1:a", "-c:v", "libx264"])
        .args("-preset veryfast -tune zerolatency -b:v 2M".split_whitespace())
        .args(ENCODE.split_whitespace())
        // Past the measured window: the last segments measured are whole.
        .args(["-t", &(secs.as_secs() + 5).to_string()])
        // FLV needs the codec headers up front.
        .args(["-flags", "+global_header", "-f", "tee", &tee])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    info!(secs = secs.as_secs(), "publishing to both servers");
    let started = Instant::now();
    let mut ffmpeg = ffmpeg.spawn().context("cannot start ffmpeg")?;
    let mut stderr = ffmpeg.stderr.take().context("ffmpeg's stderr")?;
    let until = started + secs;
    let ours = tokio::spawn(watch(
        http.clone(),
        format!("{origin}/hls/{LIVE}/index.m3u8"),
        until,
    ));
    let theirs = tokio::spawn(watch(
        http.clone(),
        format!("http://{}{}", nginx.http, Nginx::playlist_path(LIVE)),
        until,
    ));
    tokio::select! {
        status = ffmpeg.wait() => {
            let mut text = String::new();
            stderr.read_to_string(&mut text).await?;
            bail!(
                "ffmpeg stopped after {:.1} s ({}): {}",
                started.elapsed().as_secs_f64(),
                status?,
                text.trim()
            );
        }
        () = tokio::time::sleep_until(until.into()) => {}
    }
    let (ours, theirs) = (ours.await??, theirs.await??);
    ffmpeg.kill().await?;

    let ours = Percentiles::of(delays(&ours, started)).context("no segment from livepulse")?;
    let theirs = Percentiles::of(delays(&theirs, started)).context("no segment from nginx")?;
    println!(
        "origin latency: one ffmpeg (-re, 720p 2 Mb/s, 1 s GOP) -> tee -> livepulse (HLS over \
         HTTP PUT, 1 s segments) and nginx-rtmp (RTMP -> HLS, 1 s fragments), {} s; \
         segment playable (GET polled every {} ms answers 200) - its media end (both \
         include ffmpeg's start-up):",
        secs.as_secs(),
        POLL.as_millis()
    );
    println!("  livepulse  {ours}");
    println!("  nginx      {theirs}");
    // The difference is free of the start-up both delays include.
    println!(
        "  ratio nginx/livepulse of the medians: {}; nginx - livepulse: {:+.3} s",
        ratio(theirs.p50, ours.p50),
        theirs.p50 - ours.p50
    );
    Ok(())
}

/// A segment as a poller saw it.
struct Seen {
    /// Its playlist duration, seconds.
    duration: f64,
    /// When its GET first answered 200.
    playable: Option<Instant>,
}

/// Polls `playlist` every [`POLL`] until `until` and fetches every segment
/// it lists until that answers 200: the stream's segments from its first.
async fn watch(http: reqwest::Client, playlist: String, until: Instant) -> Result<Vec<Seen>> {
    let url = Url::parse(&playlist)?;
    let mut seen: Vec<Seen> = Vec::new();
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    while Instant::now() < until {
        tick.tick().await;
        let response = http
            .get(url.clone())
            .send()
            .await
            .with_context(|| format!("GET {playlist}"))?;
        // Not published yet.
        if response.status() != StatusCode::OK {
            continue;
        }
        let text = response.text().await?;
        let (first, listed) = parse_playlist(&text).with_context(|| playlist.clone())?;
        for (index, (duration, uri)) in (first..).zip(listed) {
            // Indexes count from the stream's first segment, which both
            // servers number 0, so a gap means the poller missed one.
            ensure!(
                index <= seen.len(),
                "{playlist}: segments before #{index} were never listed"
            );
            if index == seen.len() {
                seen.push(Seen {
                    duration,
                    playable: None,
                });
            }
            if seen[index].playable.is_some() {
                continue;
            }
            let segment = http.get(url.join(uri)?).send().await?;
            if segment.status() == StatusCode::OK {
                segment.bytes().await?;
                seen[index].playable = Some(Instant::now());
            }
        }
    }
    Ok(seen)
}

/// A media playlist's first media sequence number and its segments
/// (duration in seconds, URI).
fn parse_playlist(text: &str) -> Result<(usize, Vec<(f64, &str)>)> {
    let (mut first, mut listed, mut duration) = (0, Vec::new(), None);
    for line in text.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            first = n.parse().context("bad EXT-X-MEDIA-SEQUENCE")?;
        } else if let Some(info) = line.strip_prefix("#EXTINF:") {
            let seconds = info.split(',').next().unwrap_or_default();
            duration = Some(seconds.parse().context("bad EXTINF")?);
        } else if !line.is_empty() && !line.starts_with('#') {
            listed.push((duration.take().context("a URI without EXTINF")?, line));
        }
    }
    Ok((first, listed))
}

/// Seconds from each playable segment's media end (`start` plus the
/// durations up to and including it) to when it was playable.
fn delays(segments: &[Seen], start: Instant) -> Vec<f64> {
    let mut media = 0.0;
    segments
        .iter()
        .filter_map(|segment| {
            media += segment.duration;
            let at = segment.playable?.duration_since(start).as_secs_f64();
            Some(at - media)
        })
        .collect()
}

/// Percentiles of a set of delays, seconds.
#[derive(Debug, Clone, Copy)]
struct Percentiles {
    count: usize,
    p50: f64,
    p90: f64,
    max: f64,
}

impl Percentiles {
    /// `None` when `values` is empty.
    fn of(mut values: Vec<f64>) -> Option<Self> {
        values.sort_by(f64::total_cmp);
        let pct = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
        Some(Self {
            count: values.len(),
            p50: pct(0.5),
            p90: pct(0.9),
            max: *values.last()?,
        })
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:3} segments: p50 {:.3} s, p90 {:.3} s, max {:.3} s",
            self.count, self.p50, self.p90, self.max
        )
    }
}

/// `a / b` as `N.NNx`, or why not.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}x", a / b)
    } else {
        "n/a (divisor not positive)".to_owned()
    }
}

/// Loads the same segments into both servers, runs wrk against each and
/// prints requests/s and MB/s.
async fn throughput(http: &reqwest::Client, origin: &str, key: &str, nginx: &Nginx) -> Result<()> {
    let root = nginx.www().join("hls").join(VOD);
    info!("encoding the segments");
    encode_vod(&root).await?;
    // Segments first: a playlist is checked against what is stored.
    let mut files = Vec::new();
    for (rendition, _, _) in RENDITIONS {
        for entry in std::fs::read_dir(root.join(rendition))? {
            let name = entry?.file_name().into_string().ok().context("file name")?;
            files.push(format!("{rendition}/{name}"));
        }
    }
    files.sort_by_key(|path| (path.ends_with(".m3u8"), path.clone()));
    files.push("master.m3u8".to_owned());
    let mut sizes = Vec::new();
    for path in &files {
        let body = tokio::fs::read(root.join(path)).await?;
        if path.ends_with(".ts") {
            sizes.push(body.len());
        }
        let response = http
            .put(format!("{origin}/live/{key}/{path}"))
            .body(body)
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "PUT {path} to the origin: {}",
            response.status()
        );
    }
    let segments: Vec<String> = files
        .iter()
        .filter(|path| path.ends_with(".ts"))
        .map(|path| format!("/hls/{VOD}/{path}"))
        .collect();
    let script = root.join("segments.lua");
    std::fs::write(&script, wrk_script(&segments))?;

    // nginx first: our request log's broker writes may trail our run.
    info!("wrk against nginx");
    let theirs = wrk(&script, &format!("http://{}", nginx.http)).await?;
    info!("wrk against livepulse");
    let ours = wrk(&script, origin).await?;
    let log = request_log(http, origin).await?;

    let kb = |bytes: usize| bytes as f64 / 1000.0;
    let total: usize = sizes.iter().sum();
    println!(
        "origin throughput: {} MPEG-TS segments ({} renditions x {VOD_SECS}, {:.0}-{:.0} KB, \
         mean {:.0} KB), the same files in both; wrk {WRK} cycling through all of them (Lua \
         script), loopback; wrk, the server and the Kafka broker share the {} cores:",
        sizes.len(),
        RENDITIONS.len(),
        kb(*sizes.iter().min().context("no segment")?),
        kb(*sizes.iter().max().context("no segment")?),
        kb(total / sizes.len()),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "  livepulse  {ours} (in this process: tokio runtime on all cores, segments in memory, \
         request log to Kafka: {log})"
    );
    println!(
        "  nginx      {theirs} ({} worker processes, sendfile from the page cache, access_log off)",
        NGINX_WORKERS
    );
    println!(
        "  ratio livepulse/nginx: {} requests/s, {} MB/s",
        ratio(ours.requests, theirs.requests),
        ratio(ours.bytes, theirs.bytes)
    );
    Ok(())
}

/// Encodes the throughput run's renditions into `root`: `NAME/segNN.ts`,
/// `NAME/index.m3u8` and `master.m3u8`.
async fn encode_vod(root: &Path) -> Result<()> {
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg
        .args(SOURCE.split_whitespace())
        .args(["-t", &VOD_SECS.to_string()]);
    let mut stream_map = Vec::new();
    for (n, (name, size, bitrate)) in RENDITIONS.iter().enumerate() {
        ffmpeg
            .args(["-map", "0:v", "-map", "1:a"])
            .args([format!("-s:v:{n}"), size.to_string()])
            .args([format!("-b:v:{n}"), bitrate.to_string()]);
        stream_map.push(format!("v:{n},a:{n},name:{name}"));
    }
    // Only the segments' sizes matter here: the fastest preset.
    ffmpeg
        .args(["-c:v", "libx264", "-preset", "ultrafast"])
        .args(ENCODE.split_whitespace())
        .args("-f hls -hls_time 1 -hls_list_size 0 -hls_playlist_type vod".split_whitespace())
        .args(["-master_pl_name", "master.m3u8", "-var_stream_map"])
        .arg(stream_map.join(" "))
        .arg("-hls_segment_filename")
        .arg(root.join("%v/seg%02d.ts"))
        .arg(root.join("%v/index.m3u8"))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = ffmpeg.output().await.context("cannot run ffmpeg")?;
    ensure!(
        output.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// A wrk script requesting `paths` in turn (each thread from the first)
/// and printing a summary line wrk's own output lacks in machine form.
fn wrk_script(paths: &[String]) -> String {
    let mut script = String::from("local paths = {\n");
    for path in paths {
        let _ = writeln!(script, "  \"{path}\",");
    }
    script.push_str(
        r#"}
local n = 0
request = function()
  n = n % #paths + 1
  return wrk.format("GET", paths[n])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("summary: %d %d %d %d %d\n", summary.requests, summary.bytes,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout))
end
"#,
    );
    script
}

/// What wrk measured against one server.
#[derive(Debug, Clone, Copy)]
struct Load {
    /// Requests per second.
    requests: f64,
    /// Response bytes (headers included) per second.
    bytes: f64,
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:7.0} requests/s, {:5.0} MB/s",
            self.requests,
            self.bytes / 1e6
        )
    }
}

/// Runs wrk with `script` against `base` (`http://HOST:PORT`).
async fn wrk(script: &Path, base: &str) -> Result<Load> {
    let output = Command::new("wrk")
        .args(WRK.split_whitespace())
        .arg("-s")
        .arg(script)
        .arg(base)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run wrk")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "wrk failed: {}{}",
        stdout.trim(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let numbers: Vec<u64> = stdout
        .lines()
        .find_map(|line| line.strip_prefix("summary: "))
        .with_context(|| format!("no summary in wrk's output: {stdout}"))?
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let &[requests, bytes, micros, bad_status, socket_errors] = numbers.as_slice() else {
        bail!("unexpected wrk summary: {numbers:?}");
    };
    ensure!(
        bad_status == 0 && socket_errors == 0,
        "wrk against {base}: {bad_status} answers not 2xx/3xx, {socket_errors} socket errors"
    );
    let secs = micros as f64 / 1e6;
    Ok(Load {
        requests: requests as f64 / secs,
        bytes: bytes as f64 / secs,
    })
}

/// The origin's request log so far, once it caught up (or 10 s passed):
/// "P of R requests produced, D dropped".
async fn request_log(http: &reqwest::Client, origin: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = http
            .get(format!("{origin}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        let [requests, produced, dropped] =
            [PLAYBACK_REQUESTS, ACCESS_PRODUCED, ACCESS_DROPPED].map(|name| metric(&text, name));
        if produced + dropped >= requests || Instant::now() > deadline {
            return Ok(format!(
                "{produced:.0} of {requests:.0} requests produced, {dropped:.0} dropped"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The sum of metric `name`'s samples (all labels) in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |sum, value| sum + value)
}

/// Fails naming the Debian package when `program` is not on `PATH`.
fn require(program: &str, package: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()));
    ensure!(
        found,
        "`{program}` not found on PATH: install the Debian package `{package}` (`dev/setup --bench` does)"
    );
    Ok(())
}
