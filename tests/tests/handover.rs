//! Scale-out on Kafka's own machinery: two instances of the engagement job
//! in one consumer group split its tasks and hand them over on rebalances,
//! and every row still equals the Polars recomputation.
//!
//! Both instances run in this process against a real tansu broker and
//! ClickHouse, sharing one checkpoint directory. A starts alone on the first
//! third of a seeded audience and takes all 8 tasks; B joins while the
//! second third arrives, and A hands it 4 tasks through their checkpoints;
//! B leaves cleanly (a final checkpoint, then it leaves the group) while the
//! last third arrives, and A takes the 4 back from B's checkpoints. Who
//! holds a task is read from the owner token in its newest checkpoint's
//! name, and whether it is caught up from that checkpoint's offsets.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livepulse_connectors::kafka::{idempotent_producer, offsets_client};
use livepulse_contract::now_ms;
use livepulse_contract::topics::{STREAM_PARTITIONS, partition_for};
use livepulse_e2e::report::{Report, keyed_sessions, keyed_windows, report};
use livepulse_e2e::{feed, oracle, stack};
use livepulse_pipelines::jobs::Job;
use livepulse_pipelines::jobs::engagement::Engagement;
use livepulse_pipelines::runtime::checkpoint::Meta;
use livepulse_pipelines::{Pipeline, PipelineConfig, PipelineError, PipelineStats};
use livepulse_simulator::{Audience, AudienceConfig};
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a rebalance, and catching up after it, may take.
const SETTLE: Duration = Duration::from_secs(30);

/// One instance of the job, running in this process.
struct Instance {
    shutdown: CancellationToken,
    run: JoinHandle<Result<PipelineStats, PipelineError>>,
}

impl Instance {
    fn start(config: &PipelineConfig, stack: &stack::Stack) -> Self {
        let shutdown = CancellationToken::new();
        let pipeline = Pipeline::new(
            config.clone(),
            stack.kafka.clone(),
            stack.clickhouse.clone(),
            Engagement,
        );
        let run = tokio::spawn(pipeline.run(shutdown.clone()));
        Self { shutdown, run }
    }

    /// Stops it cleanly: it checkpoints every task, then leaves the group.
    async fn stop(self) -> PipelineStats {
        self.shutdown.cancel();
        self.run.await.unwrap().unwrap()
    }
}

/// The group's tasks, as the shared checkpoint directory and the broker
/// show them.
struct Tasks {
    /// `<checkpoint_dir>/<group>`, one `partition-<p>` directory per task.
    root: PathBuf,
    offsets: Arc<BaseConsumer>,
    topics: Vec<&'static str>,
}

impl Tasks {
    /// Per task, the owner of its newest checkpoint.
    fn owners(&self) -> BTreeMap<i32, String> {
        owners_of(self.newest())
    }

    /// Per task, the owner token and metadata of its newest checkpoint.
    fn newest(&self) -> BTreeMap<i32, (String, Meta)> {
        (0..STREAM_PARTITIONS)
            .filter_map(|p| {
                let newest = newest_checkpoint(&self.root.join(format!("partition-{p}")))?;
                Some((p, newest))
            })
            .collect()
    }

    /// Per (topic, partition), the offset after the broker's last record.
    async fn ends(&self) -> BTreeMap<(&'static str, i32), i64> {
        let (offsets, topics) = (Arc::clone(&self.offsets), self.topics.clone());
        let query = move || {
            let mut ends = BTreeMap::new();
            for topic in topics {
                for p in 0..STREAM_PARTITIONS {
                    match offsets.fetch_watermarks(topic, p, Duration::from_secs(5)) {
                        Ok((_, high)) => ends.insert((topic, p), high),
                        Err(e) => panic!("querying the end of {topic}/{p}: {e}"),
                    };
                }
            }
            ends
        };
        tokio::task::spawn_blocking(query).await.unwrap()
    }

    /// Per task, the owner of its newest checkpoint, once the newest
    /// checkpoint of every task holds all the broker has of its partitions.
    async fn caught_up(&self) -> Option<BTreeMap<i32, String>> {
        let ends = self.ends().await;
        let newest = self.newest();
        let holds_all = |p: i32| {
            newest.get(&p).is_some_and(|(_, meta)| {
                ends.iter()
                    .filter(|((_, partition), end)| *partition == p && **end > 0)
                    .all(|((topic, _), end)| {
                        meta.offsets
                            .iter()
                            .any(|o| o.topic == *topic && o.next == *end)
                    })
            })
        };
        (0..STREAM_PARTITIONS)
            .all(holds_all)
            .then(|| owners_of(newest))
    }
}

/// The newest complete checkpoint in a task's directory: its owner token
/// and metadata. `None` also when it vanished while being read (the other
/// instance prunes old checkpoints); the caller polls again.
fn newest_checkpoint(dir: &Path) -> Option<(String, Meta)> {
    let (id, owner) = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let (id, owner) = name.strip_prefix("ckpt-")?.split_once('-')?;
            if owner.ends_with(".tmp") {
                return None;
            }
            Some((id.parse::<u64>().ok()?, owner.to_owned()))
        })
        .max()?;
    let meta = std::fs::read(dir.join(format!("ckpt-{id}-{owner}")).join("meta.json")).ok()?;
    Some((owner, serde_json::from_slice(&meta).ok()?))
}

fn owners_of(newest: BTreeMap<i32, (String, Meta)>) -> BTreeMap<i32, String> {
    newest
        .into_iter()
        .map(|(p, (owner, _))| (p, owner))
        .collect()
}

/// The tasks whose newest checkpoint `owner` wrote.
fn held(owners: &BTreeMap<i32, String>, owner: &str) -> Vec<i32> {
    owners
        .iter()
        .filter(|(_, o)| *o == owner)
        .map(|(p, _)| *p)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_split_the_job_and_hand_tasks_over_exactly() {
    let began = Instant::now();
    let stack = stack::start().await;
    let state = tempfile::tempdir().unwrap();
    let config = PipelineConfig {
        group_prefix: "handover".into(),
        checkpoint_dir: state.path().to_owned(),
        checkpoint_interval_ms: 500,
        idle_timeout_ms: 1_000,
        // Each slice arrives after the idle watermark followed the wall
        // clock past the previous one: the horizon keeps it correctable.
        correction_horizon_ms: 3_600_000,
        ..PipelineConfig::default()
    };
    let tasks = Tasks {
        root: state.path().join(config.group_of(Engagement.name())),
        offsets: Arc::new(offsets_client(&stack.kafka).unwrap()),
        topics: Engagement.topics().iter().map(|t| t.name).collect(),
    };

    // Six simulated minutes that ended four minutes ago.
    let start_ms = (now_ms() - 10 * 60_000) / 60_000 * 60_000;
    // The first seed from 21 whose 16 streams fall in all 8 partitions, so
    // that every task has work to hand over.
    let events = (21..)
        .map(|seed| {
            let mut audience = AudienceConfig::new(seed, 16, 500, start_ms);
            audience.duplicate_rate = 0.03;
            audience.max_disorder_ms = 3_000;
            Audience::run_for(audience, 6 * 60_000).unwrap()
        })
        .find(|events| {
            let spread: BTreeSet<i32> = events
                .iter()
                .map(|e| partition_for(&e.stream_id, STREAM_PARTITIONS))
                .collect();
            spread.len() == STREAM_PARTITIONS as usize
        })
        .unwrap();
    let expected = keyed_windows(oracle::engagement_job(&events).unwrap());
    let expected_sessions = keyed_sessions(oracle::viewer_sessions(&events).unwrap());
    let producer = idempotent_producer(&stack.kafka, Duration::from_secs(30)).unwrap();
    // The audience in sixths: every phase gets a third, in two halves.
    let sixths = |from: usize, to: usize| &events[events.len() * from / 6..events.len() * to / 6];

    // A alone takes every task.
    let phase = Instant::now();
    let a = Instance::start(&config, &stack);
    feed::produce(&producer, sixths(0, 2)).await;
    let owners = stack::poll(
        SETTLE,
        || tasks.caught_up(),
        |owners| {
            owners
                .as_ref()
                .is_some_and(|o| o.values().collect::<HashSet<_>>().len() == 1)
        },
    )
    .await
    .expect("A never caught up with the first third");
    let a_token = owners[&0].clone();
    assert_eq!(held(&owners, &a_token).len(), 8, "A alone: {owners:?}");
    let alone = phase.elapsed();

    // B joins while events arrive; A hands it half of the tasks.
    let phase = Instant::now();
    let b = Instance::start(&config, &stack);
    feed::produce(&producer, sixths(2, 3)).await;
    let owners = stack::poll(
        SETTLE,
        || async { tasks.owners() },
        |owners| owners.values().any(|owner| *owner != a_token),
    )
    .await;
    let b_token = owners
        .into_values()
        .find(|owner| *owner != a_token)
        .expect("B never took a task");
    let joined = phase.elapsed();
    feed::produce(&producer, sixths(3, 4)).await;
    let owners = stack::poll(
        SETTLE,
        || tasks.caught_up(),
        |owners| {
            owners
                .as_ref()
                .is_some_and(|o| held(o, &a_token).len() == 4 && held(o, &b_token).len() == 4)
        },
    )
    .await
    .expect("A and B never caught up with the second third");
    let (kept, taken) = (held(&owners, &a_token), held(&owners, &b_token));
    assert_eq!(
        (kept.len(), taken.len()),
        (4, 4),
        "A holds {kept:?}, B {taken:?}"
    );
    let split = phase.elapsed();

    // B leaves while events arrive; A takes its tasks back.
    let phase = Instant::now();
    feed::produce(&producer, sixths(4, 5)).await;
    let b_stats = b.stop().await;
    let left = phase.elapsed();
    let owners = stack::poll(
        SETTLE,
        || async { tasks.owners() },
        |owners| held(owners, &a_token).len() == 8,
    )
    .await;
    assert_eq!(held(&owners, &a_token).len(), 8, "A took back: {owners:?}");
    let taken_back = phase.elapsed();
    feed::produce(&producer, sixths(5, 6)).await;
    let owners = stack::poll(
        SETTLE,
        || tasks.caught_up(),
        |owners| {
            owners
                .as_ref()
                .is_some_and(|o| held(o, &a_token).len() == 8)
        },
    )
    .await
    .expect("A never caught up with the last third");
    assert_eq!(
        held(&owners, &a_token).len(),
        8,
        "A alone again: {owners:?}"
    );

    // Every window and session is closed once the idle watermark follows
    // the wall clock.
    let phase = Instant::now();
    let clickhouse = &stack.clickhouse;
    let actual = stack::poll(
        Duration::from_secs(60),
        || async { keyed_windows(stack::engagement_rows(clickhouse).await) },
        |rows| *rows == expected,
    )
    .await;
    let sessions = stack::poll(
        Duration::from_secs(30),
        || async { keyed_sessions(stack::viewer_sessions(clickhouse).await) },
        |rows| *rows == expected_sessions,
    )
    .await;
    let distinct: HashSet<&str> = events.iter().map(|e| e.event_id.as_ref()).collect();
    let raw = stack::distinct_raw_events(clickhouse, distinct.len() as u64).await;
    let landed = phase.elapsed();
    let a_stats = a.stop().await;

    let windows_report = report(&expected, &actual, |r| r.events);
    let sessions_report = report(&expected_sessions, &sessions, |r| r.events);
    println!(
        "handover: {} events ({} distinct); A alone caught up in {alone:.1?}; B took its \
         first task {joined:.1?} after starting, both caught up {split:.1?} after it \
         (A kept {kept:?}, B took {taken:?}); B stopped in {left:.1?}, A held all 8 again \
         {taken_back:.1?} after B was told to stop; rows landed {landed:.1?} later; \
         {:.1?} in all",
        events.len(),
        distinct.len(),
        began.elapsed(),
    );
    println!(
        "handover: {} window rows expected: {windows_report}; {} viewer sessions expected: \
         {sessions_report}; {raw} raw events",
        expected.len(),
        expected_sessions.len(),
    );
    for (name, stats) in [("A", &a_stats), ("B", &b_stats)] {
        println!(
            "handover: {name} started {} tasks, handed over {}; read {} events ({} replayed \
             records skipped), {} checkpoints, {} commits, {} rows, {} session rows",
            stats.tasks_started,
            stats.tasks_handed_over,
            stats.events,
            stats.replayed_records,
            stats.checkpoints,
            stats.commits,
            stats.rows_written,
            stats.session_rows_written,
        );
    }
    assert_eq!(windows_report, Report::default(), "window rows");
    assert_eq!(sessions_report, Report::default(), "viewer sessions");
    assert_eq!(
        raw,
        distinct.len() as u64,
        "raw events table holds each event once"
    );
    // A: all 8 at start, then B's 4 back; it handed 4 to B. B: its 4,
    // which it leaves by stopping, not by handing them over.
    assert_eq!(
        (a_stats.tasks_started, a_stats.tasks_handed_over),
        (12, 4),
        "A's tasks started and handed over"
    );
    assert_eq!(
        (b_stats.tasks_started, b_stats.tasks_handed_over),
        (4, 0),
        "B's tasks started and handed over"
    );
    for stats in [&a_stats, &b_stats] {
        assert_eq!(stats.too_late, 0, "no event past the correction horizon");
        assert_eq!(stats.late_session_updates, 0);
    }
}
