//! `livepulse streams`: stream keys, through a running origin's admin API.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use livepulse_ingest::origin::{CreatedStream, ErrorResponse, NewStream, StreamInfo};
use reqwest::{RequestBuilder, Response, StatusCode};

use crate::config::Config;

/// Arguments of `livepulse streams`.
#[derive(Debug, Args)]
pub struct StreamsArgs {
    /// The origin's base URL. Default: `http://` + `[origin] listen`.
    #[arg(long)]
    origin: Option<String>,
    /// The admin token. Default: `[origin] admin_token`.
    #[arg(long, env = "LIVEPULSE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List streams with a key and their creators (keys are never listed).
    List,
    /// Create a stream key; prints it once.
    Create {
        /// The stream viewers will address (`/hls/<stream id>/`).
        stream_id: String,
        /// The creator who owns it.
        creator_id: String,
    },
    /// Revoke a stream's key; a live stream ends at once.
    Revoke {
        /// The stream.
        stream_id: String,
    },
}

/// Runs one admin action and prints its outcome.
pub async fn run(config: &Config, args: StreamsArgs) -> Result<()> {
    let base = args
        .origin
        .unwrap_or_else(|| format!("http://{}", config.origin.listen));
    let token = args
        .admin_token
        .or_else(|| {
            config
                .origin
                .admin_token
                .as_ref()
                .map(|t| t.expose().to_owned())
        })
        .context(
            "no admin token: pass --admin-token, set LIVEPULSE_ADMIN_TOKEN or [origin] admin_token",
        )?;
    let http = reqwest::Client::new();
    let send = |request: RequestBuilder| async {
        let response = request
            .bearer_auth(&token)
            .send()
            .await
            .with_context(|| format!("cannot reach the origin at {base}"))?;
        refused(response).await
    };
    let url = format!("{base}/admin/streams");
    match args.action {
        Action::List => {
            let streams: Vec<StreamInfo> = send(http.get(&url)).await?.json().await?;
            for stream in streams {
                println!("{}\t{}", stream.stream_id, stream.creator_id);
            }
        }
        Action::Create {
            stream_id,
            creator_id,
        } => {
            let body = NewStream {
                stream_id,
                creator_id,
            };
            let created: CreatedStream = send(http.post(&url).json(&body)).await?.json().await?;
            println!(
                "stream {} (creator {})",
                created.stream_id, created.creator_id
            );
            println!("key    {}", created.key);
            println!(
                "publish: ffmpeg ... -f hls -method PUT {base}/live/{}/index.m3u8",
                created.key
            );
        }
        Action::Revoke { stream_id } => {
            send(http.delete(format!("{url}/{stream_id}"))).await?;
            println!("revoked {stream_id}");
        }
    }
    Ok(())
}

/// The response when it succeeded; otherwise the origin's reason as an error.
async fn refused(response: Response) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let reason = match response.json::<ErrorResponse>().await {
        Ok(body) => body.error,
        Err(_) => status.canonical_reason().unwrap_or("").to_owned(),
    };
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            bail!("the origin refused the admin token: {reason}")
        }
        _ => bail!("the origin answered {status}: {reason}"),
    }
}
