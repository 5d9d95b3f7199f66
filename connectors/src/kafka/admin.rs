use std::time::Duration;

use livepulse_contract::topics::Topic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use tracing::info;

use super::KafkaConfig;

/// Creates `topics` with their partition counts. A topic that already exists
/// is left as it is, so this is safe to run on every start.
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[Topic]) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = cfg.client_config().create()?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|t| NewTopic::new(t.name, t.partitions, TopicReplication::Fixed(-1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(name) => info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code))
                    .inspect_err(|_| tracing::error!(topic = %name, "topic creation failed"));
            }
        }
    }
    Ok(())
}
