//! Crash harness: the engagement job as a separate `livepulse run` process,
//! killed over and over while a seeded event stream arrives, must still
//! land exactly the rows the Polars batch recomputation gives.
//!
//! Each trial produces the next slice of the stream to the broker, starts
//! the job (it restores its newest checkpoint), and crashes it: most trials
//! with `kill -9` after a random delay, the others at a crash point, i.e.
//! between writing a checkpoint and publishing it, or half-way through a
//! ClickHouse insert. A last clean run then drains the stream and closes
//! every window and session. Every ClickHouse row (windows and viewer
//! sessions) is compared with the recomputation and the lost /
//! double-counted / wrong rows are reported; all must be 0.
//!
//! The seed is printed; set `LIVEPULSE_CRASH_SEED` to replay a run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use livepulse_connectors::kafka::idempotent_producer;
use livepulse_contract::now_ms;
use livepulse_e2e::report::{Report, keyed_sessions, keyed_windows, mismatches, report};
use livepulse_e2e::{feed, oracle, stack};
use livepulse_simulator::{Audience, AudienceConfig};

const TRIALS: usize = 24;
const CRASH_POINTS: [&str; 2] = ["checkpoint", "clickhouse_insert"];

/// A small deterministic generator (xorshift64*), so a seed replays a run.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// The `livepulse` binary built beside this test.
fn livepulse_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("livepulse"))
        .unwrap();
    assert!(
        bin.exists(),
        "{} is missing: build the workspace's binaries first (cargo build --release --workspace)",
        bin.display()
    );
    bin
}

struct Job {
    env: Vec<(&'static str, String)>,
    logs: PathBuf,
}

impl Job {
    fn start(&self, trial: usize, crash_point: Option<String>) -> Child {
        let log = std::fs::File::create(self.logs.join(format!("trial-{trial:02}.log"))).unwrap();
        let mut command = Command::new(livepulse_binary());
        command
            .args(["run", "--job", "engagement"])
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("RUST_LOG", "info,livepulse_pipelines=debug")
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(point) = crash_point {
            command.env("LIVEPULSE_CRASHPOINT", point);
        }
        command.spawn().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_lose_and_double_count_nothing() {
    let seed = std::env::var("LIVEPULSE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ms() as u64);
    println!("crash harness seed {seed} (LIVEPULSE_CRASH_SEED={seed} replays it)");
    let mut dice = Dice(seed | 1);

    let stack = stack::start().await;
    let (kafka, clickhouse) = (&stack.kafka, &stack.clickhouse);

    // Six simulated minutes that ended four minutes ago.
    let start_ms = (now_ms() - 10 * 60_000) / 60_000 * 60_000;
    let mut audience = AudienceConfig::new(seed, 8, 400, start_ms);
    audience.duplicate_rate = 0.03;
    audience.max_disorder_ms = 3_000;
    let events = Audience::run_for(audience, 6 * 60_000).unwrap();
    let expected = keyed_windows(oracle::engagement_job(&events).unwrap());
    let expected_sessions = keyed_sessions(oracle::viewer_sessions(&events).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let job = Job {
        env: vec![
            ("LIVEPULSE_KAFKA__BROKERS", kafka.brokers.clone()),
            ("LIVEPULSE_CLICKHOUSE__URL", clickhouse.url.clone()),
            (
                "LIVEPULSE_CLICKHOUSE__DATABASE",
                clickhouse.database.clone(),
            ),
            ("LIVEPULSE_CLICKHOUSE__USER", clickhouse.user.clone()),
            (
                "LIVEPULSE_CLICKHOUSE__PASSWORD",
                clickhouse.password.clone(),
            ),
            ("LIVEPULSE_PIPELINE__GROUP_PREFIX", "crash-harness".into()),
            // The broker never hands a killed member's partitions to the
            // next one, so the job reads every partition itself.
            ("LIVEPULSE_PIPELINE__ASSIGNMENT", "all".into()),
            (
                "LIVEPULSE_PIPELINE__CHECKPOINT_DIR",
                dir.path().join("checkpoints").display().to_string(),
            ),
            ("LIVEPULSE_PIPELINE__CHECKPOINT_INTERVAL_MS", "300".into()),
            ("LIVEPULSE_PIPELINE__FLUSH_INTERVAL_MS", "100".into()),
            ("LIVEPULSE_PIPELINE__MAX_BATCH_EVENTS", "2048".into()),
            ("LIVEPULSE_PIPELINE__IDLE_TIMEOUT_MS", "1000".into()),
            // Every slice is older than the wall clock, which the watermark
            // follows between slices: the horizon keeps all of it correctable.
            (
                "LIVEPULSE_PIPELINE__CORRECTION_HORIZON_MS",
                "3600000".into(),
            ),
        ],
        logs: logs.clone(),
    };

    let producer = idempotent_producer(kafka, Duration::from_secs(30)).unwrap();
    let slice = events.len().div_ceil(TRIALS);
    let (mut killed, mut crash_points) = (0, Vec::new());
    for (trial, chunk) in events.chunks(slice).enumerate() {
        feed::produce(&producer, chunk).await;
        let crash_point = (trial % 3 == 2).then(|| {
            let point = CRASH_POINTS[dice.below(2) as usize];
            format!("{point}:{}", 1 + dice.below(3))
        });
        let mut child = job.start(trial, crash_point.clone());
        let deadline = Instant::now() + Duration::from_millis(300 + dice.below(2_200));
        let crashed_itself = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        match crashed_itself {
            Some(status) => {
                assert!(
                    crash_point.is_some(),
                    "trial {trial}: the job exited by itself ({status}); see its log"
                );
                crash_points.push(crash_point.unwrap_or_default());
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
            }
        }
    }

    // A last run drains what is left and closes every window.
    let mut last = job.start(TRIALS, None);
    let actual = stack::poll(
        Duration::from_secs(180),
        || async { keyed_windows(stack::engagement_rows(clickhouse).await) },
        |rows| *rows == expected,
    )
    .await;
    let sessions = stack::poll(
        Duration::from_secs(60),
        || async { keyed_sessions(stack::viewer_sessions(clickhouse).await) },
        |rows| *rows == expected_sessions,
    )
    .await;
    let distinct: std::collections::HashSet<&str> =
        events.iter().map(|e| e.event_id.as_ref()).collect();
    let raw = stack::distinct_raw_events(clickhouse, distinct.len() as u64).await;
    stop(&mut last);

    let report_windows = report(&expected, &actual, |r| r.events);
    let report_sessions = report(&expected_sessions, &sessions, |r| r.events);
    println!(
        "crash harness: {} trials ({killed} kill -9, {} crash points: {crash_points:?}); \
         {} window rows expected: {report_windows}; \
         {} viewer sessions expected: {report_sessions}",
        TRIALS,
        crash_points.len(),
        expected.len(),
        expected_sessions.len(),
    );
    let clean = report_windows == Report::default() && report_sessions == Report::default();
    if !clean || raw != distinct.len() as u64 {
        for entry in std::fs::read_dir(&logs).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            eprintln!("--- {} (last lines)", path.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        for mismatch in mismatches(&expected, &actual, 20)
            .into_iter()
            .chain(mismatches(&expected_sessions, &sessions, 20))
        {
            eprintln!("{mismatch}");
        }
    }
    assert_eq!(report_windows, Report::default(), "windows, seed {seed}");
    assert_eq!(report_sessions, Report::default(), "sessions, seed {seed}");
    assert_eq!(
        raw,
        distinct.len() as u64,
        "raw events table holds each event once (seed {seed})"
    );
    assert!(
        killed >= TRIALS / 2,
        "too few trials were killed from outside: {killed}"
    );
}

/// Stops a job cleanly (SIGTERM), killing it if it hangs.
fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
