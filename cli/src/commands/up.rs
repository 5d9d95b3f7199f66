//! `livepulse up`: the whole system on one machine.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use livepulse_connectors::clickhouse::ClickHouseConfig;
use livepulse_connectors::kafka::{KafkaConfig, ensure_topics};
use livepulse_contract::topics;
use livepulse_embedded::broker::LocalBroker;
use livepulse_embedded::clickhouse::LocalClickHouse;
use livepulse_embedded::home_dir;
use livepulse_ingest::collector::{Collector, WriteKey};
use livepulse_ingest::origin::{Origin, OriginConfig, Secret, StreamKey};
use livepulse_pipelines::jobs::engagement::Engagement;
use livepulse_pipelines::jobs::qoe::Qoe;
use livepulse_pipelines::{Pipeline, PipelineConfig};
use tokio::net::TcpListener;

use super::shutdown_on_signal;
use super::simulate::{SimulateArgs, drive_audience};
use crate::config::Config;

/// Arguments of `livepulse up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Live streams in the synthetic audience.
    #[arg(long, default_value_t = 8)]
    streams: u32,
    /// Viewers in the synthetic audience.
    #[arg(long, default_value_t = 500)]
    viewers: u32,
    /// Seed of the synthetic audience.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Run without the synthetic audience (bring your own events).
    #[arg(long)]
    no_audience: bool,
    /// Run without the live test stream (ffmpeg publishing to the origin).
    #[arg(long)]
    no_test_stream: bool,
}

/// The stream `up` publishes when no stream key is configured.
const TEST_STREAM: &str = "live-test";

/// Starts what is not configured, runs everything, stops it all on Ctrl-C.
pub async fn run(config: Config, args: UpArgs) -> Result<()> {
    let shutdown = shutdown_on_signal();
    let data_dir = config
        .embedded
        .data_dir
        .clone()
        .unwrap_or_else(|| home_dir().join("data"));

    let (kafka, broker) = match &config.kafka {
        Some(_) => (config.require_kafka().cloned()?, None),
        None => {
            let broker =
                start_broker(&data_dir.join("broker"), config.embedded.broker_port).await?;
            (KafkaConfig::local(broker.bootstrap_servers()), Some(broker))
        }
    };
    let (clickhouse, server) = match &config.clickhouse {
        Some(_) => (config.require_clickhouse().cloned()?, None),
        None => {
            let server = start_clickhouse(
                &data_dir.join("clickhouse"),
                config.embedded.clickhouse_http_port,
            )
            .await?;
            let clickhouse = ClickHouseConfig {
                url: server.http_url(),
                database: "livepulse".to_owned(),
                user: server.writer().user.clone(),
                password: server.writer().password.clone(),
            };
            (clickhouse, Some(server))
        }
    };
    ensure_topics(&kafka, &topics::ALL)
        .await
        .context("creating topics")?;
    let report = livepulse_sql::migrate(&clickhouse)
        .await
        .context("migrating ClickHouse")?;
    println!(
        "clickhouse  database `{}`: {} migration(s) applied now, {} before",
        report.database,
        report.applied.len(),
        report.already_applied
    );

    let mut collector_config = config.collector.clone();
    if collector_config.write_keys.is_empty() {
        let key = format!("lp_{}", uuid::Uuid::new_v4().simple());
        collector_config.write_keys.push(WriteKey {
            name: "local".to_owned(),
            key,
        });
    }
    let write_key = collector_config.write_keys[0].key.clone();
    let listener = bind_or_any(collector_config.listen).await?;
    let collector_url = format!("http://{}", listener.local_addr()?);
    let collector = Collector::new(collector_config, &kafka)?;
    let collector_task =
        tokio::spawn(collector.serve(listener, shutdown.clone().cancelled_owned()));
    let origin_config = origin_config(&config.origin);
    let origin_listener = bind_or_any(origin_config.listen).await?;
    let origin_url = format!("http://{}", origin_listener.local_addr()?);
    let mut origin = Origin::new(origin_config.clone(), &kafka)?;
    let rtmp_url = match origin_config.rtmp_listen {
        Some(addr) => {
            let rtmp = bind_or_any(addr).await?;
            let url = format!("rtmp://{}/live", rtmp.local_addr()?);
            origin = origin.with_rtmp(rtmp);
            Some(url)
        }
        None => None,
    };
    let origin_task =
        tokio::spawn(origin.serve(origin_listener, shutdown.clone().cancelled_owned()));
    // Without ffmpeg the rest of the system still runs: say so and go on.
    let test_stream = match (args.no_test_stream, origin_config.streams.first()) {
        (false, Some(stream)) => {
            match super::test_stream::start(&origin_url, stream.key.expose()) {
                Ok(ffmpeg) => Some((ffmpeg, stream.stream_id.clone())),
                Err(e) => {
                    tracing::warn!("no live test stream: {e:#}");
                    None
                }
            }
        }
        _ => None,
    };

    let mut pipeline_config = config.pipeline.clone();
    // Checkpoints hold broker offsets, so by default they live beside the
    // local broker's data.
    if pipeline_config.checkpoint_dir == PipelineConfig::default().checkpoint_dir {
        pipeline_config.checkpoint_dir = data_dir.join("checkpoints");
    }
    let engagement = Pipeline::new(
        pipeline_config.clone(),
        kafka.clone(),
        clickhouse.clone(),
        Engagement,
    );
    let engagement_task = tokio::spawn(engagement.run(shutdown.clone()));
    let qoe = Pipeline::new(pipeline_config, kafka.clone(), clickhouse.clone(), Qoe);
    let qoe_task = tokio::spawn(qoe.run(shutdown.clone()));

    let (stop_audience, audience_stopped) = tokio::sync::watch::channel(false);
    let audience_task = (!args.no_audience).then(|| {
        let simulate = SimulateArgs {
            streams: args.streams,
            viewers: args.viewers,
            seed: args.seed,
            collector: collector_url.clone(),
            write_key: write_key.clone(),
        };
        tokio::spawn(async move { drive_audience(&simulate, audience_stopped).await })
    });

    print_banner(
        &collector_url,
        &write_key,
        &origin_url,
        rtmp_url.as_deref(),
        &origin_config,
        test_stream.as_ref().map(|(_, stream)| stream.as_str()),
        &kafka,
        &clickhouse,
        server.as_ref(),
        &args,
    );
    shutdown.cancelled().await;

    let _ = stop_audience.send(true);
    if let Some(task) = audience_task {
        let totals = task.await??;
        println!(
            "audience: sent {} events, {} accepted",
            totals.sent, totals.accepted
        );
    }
    if let Some((mut ffmpeg, _)) = test_stream {
        let _ = ffmpeg.kill().await;
    }
    collector_task.await??;
    origin_task.await??;
    let stats = engagement_task.await??;
    println!(
        "engagement job: {} events read, {} rows written",
        stats.events, stats.rows_written
    );
    let stats = qoe_task.await??;
    println!(
        "qoe job: {} rows read, {} rows written, {} views",
        stats.events, stats.rows_written, stats.session_rows_written
    );
    if let Some(broker) = broker {
        broker.stop().await?;
    }
    if let Some(server) = server {
        server.stop().await?;
    }
    println!("stopped");
    Ok(())
}

/// The configured origin, with a test stream key and an admin token
/// generated when none are configured.
fn origin_config(configured: &OriginConfig) -> OriginConfig {
    let mut config = configured.clone();
    let secret = |prefix: &str| Secret(format!("{prefix}_{}", uuid::Uuid::new_v4().simple()));
    if config.streams.is_empty() {
        config.streams.push(StreamKey {
            key: secret("sk"),
            stream_id: TEST_STREAM.to_owned(),
            creator_id: "creator-test".to_owned(),
        });
    }
    config.admin_token.get_or_insert_with(|| secret("adm"));
    config
}

async fn start_broker(dir: &Path, port: u16) -> Result<LocalBroker> {
    super::install::tansu().await?;
    let port = if port_is_free(port).await { port } else { 0 };
    let broker = LocalBroker::start(dir, port).await?;
    println!(
        "broker      {} (tansu, data in {})",
        broker.bootstrap_servers(),
        dir.display()
    );
    Ok(broker)
}

async fn start_clickhouse(dir: &Path, port: u16) -> Result<LocalClickHouse> {
    super::install::clickhouse().await?;
    let port = if port_is_free(port).await { port } else { 0 };
    let server = LocalClickHouse::start(dir, port).await?;
    println!(
        "clickhouse  {} (data in {})",
        server.http_url(),
        dir.display()
    );
    Ok(server)
}

async fn port_is_free(port: u16) -> bool {
    port != 0 && TcpListener::bind(("127.0.0.1", port)).await.is_ok()
}

async fn bind_or_any(addr: SocketAddr) -> Result<TcpListener> {
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(_) => TcpListener::bind(SocketAddr::new(addr.ip(), 0))
            .await
            .with_context(|| format!("cannot listen on {}", addr.ip())),
    }
}

#[allow(clippy::too_many_arguments)] // one line of the banner each
fn print_banner(
    collector_url: &str,
    write_key: &str,
    origin_url: &str,
    rtmp_url: Option<&str>,
    origin: &OriginConfig,
    test_stream: Option<&str>,
    kafka: &KafkaConfig,
    clickhouse: &ClickHouseConfig,
    server: Option<&LocalClickHouse>,
    args: &UpArgs,
) {
    println!();
    println!("livepulse is up");
    println!("  collector   POST {collector_url}/v1/events   (Authorization: Bearer {write_key})");
    println!("  metrics     {collector_url}/metrics");
    let key = origin.streams.first().map_or("<key>", |s| s.key.expose());
    println!("  origin      PUT {origin_url}/live/{key}/...   (ffmpeg -f hls -method PUT)");
    if let Some(rtmp) = rtmp_url {
        println!("              {rtmp}/{key}   (OBS: server {rtmp}, stream key {key})");
    }
    if let Some(stream) = test_stream {
        println!("  test stream {origin_url}/hls/{stream}/master.m3u8   (ffmpeg, 2 renditions)");
    }
    if let Some(token) = &origin.admin_token {
        println!(
            "  stream keys livepulse streams --origin {origin_url} --admin-token {} list",
            token.expose()
        );
    }
    println!("  broker      {}", kafka.brokers);
    println!(
        "  clickhouse  {} database `{}`",
        clickhouse.url, clickhouse.database
    );
    if !args.no_audience {
        println!(
            "  audience    {} streams, {} viewers (seed {})",
            args.streams, args.viewers, args.seed
        );
    }
    let (user, password) = server.map_or((clickhouse.user.as_str(), "<password>"), |s| {
        (s.analyst().user.as_str(), s.analyst().password.as_str())
    });
    println!();
    println!("Windows close about 10 s after they end. Then try (read-only analyst user):");
    println!(
        "  curl -s -u {user}:{password} '{}/?database={}' --data-binary \\\n    \"SELECT stream_id, max(concurrent_viewers) AS peak, sum(chat_messages) AS chat, sum(gift_value_cents) / 100 AS gifts \
         FROM stream_engagement FINAL WHERE window_seconds = 10 GROUP BY stream_id ORDER BY peak DESC FORMAT PrettyCompact\"",
        clickhouse.url, clickhouse.database
    );
    println!();
    println!("Ctrl-C stops everything.");
}
