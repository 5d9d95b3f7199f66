//! `livepulse topics`: create the Kafka topics.

use anyhow::Result;
use livepulse_connectors::kafka::ensure_topics;
use livepulse_contract::topics;

use crate::config::Config;

/// Creates every topic of the contract (existing ones are left alone).
pub async fn run(config: &Config) -> Result<()> {
    ensure_topics(config.require_kafka()?, &topics::ALL).await?;
    for topic in topics::ALL {
        println!("{} ({} partitions)", topic.name, topic.partitions);
    }
    Ok(())
}
