//! `livepulse run`: run a streaming job.

use anyhow::Result;
use clap::{Args, ValueEnum};
use livepulse_pipelines::Pipeline;
use livepulse_pipelines::jobs::engagement::Engagement;
use livepulse_pipelines::jobs::qoe::Qoe;

use super::shutdown_on_signal;
use crate::config::Config;

/// Which job to run.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum JobName {
    /// Audience and interaction per stream, 10 s and 1 min windows.
    Engagement,
    /// Quality of experience per view and per minute, from player events
    /// and the origin's CMCD request log.
    Qoe,
}

/// Arguments of `livepulse run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job.
    #[arg(long, value_enum, default_value = "engagement")]
    job: JobName,
}

/// Runs the job until Ctrl-C.
pub async fn run(config: &Config, args: RunArgs) -> Result<()> {
    let (pipeline, kafka, clickhouse) = (
        config.pipeline.clone(),
        config.require_kafka()?.clone(),
        config.require_clickhouse()?.clone(),
    );
    let shutdown = shutdown_on_signal();
    let stats = match args.job {
        JobName::Engagement => {
            Pipeline::new(pipeline, kafka, clickhouse, Engagement)
                .run(shutdown)
                .await?
        }
        JobName::Qoe => {
            Pipeline::new(pipeline, kafka, clickhouse, Qoe)
                .run(shutdown)
                .await?
        }
    };
    println!("{stats:?}");
    Ok(())
}
