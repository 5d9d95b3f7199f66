//! The Kafka source: a consumer-group member reading the event topics, with
//! the bookkeeping the runtime needs for watermarks and safe commits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use livepulse_connectors::kafka::{KafkaConfig, group_consumer, offsets_client};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};

use crate::runtime::checkpoint::SourceOffset;

/// How long one offset query may take; the runtime asks again later.
const OFFSET_QUERY_TIMEOUT: Duration = Duration::from_secs(1);
/// How long start-up metadata and committed-offset queries may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// A partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

/// A consumer-group member, with topic-partitions interned as small source
/// ids so Arrow batches can carry their provenance in a `UInt32` column.
pub struct KafkaSource {
    consumer: StreamConsumer,
    offsets: Arc<BaseConsumer>,
    ids: HashMap<TopicPartition, u32>,
    partitions: Vec<TopicPartition>,
    /// Next offset to read, per source id, as far as this member has read.
    next_offsets: HashMap<u32, i64>,
    /// Offsets this member last committed, per source id.
    committed: HashMap<u32, i64>,
    /// Per source id, the offset the restored checkpoint resumes at: records
    /// below it are already in the state and are skipped.
    resume_at: HashMap<u32, i64>,
}

impl KafkaSource {
    /// Joins `group_id` and subscribes to `topics`.
    pub fn subscribe(
        cfg: &KafkaConfig,
        group_id: &str,
        topics: &[&str],
    ) -> Result<Self, KafkaError> {
        let consumer = group_consumer(cfg, group_id)?;
        consumer.subscribe(topics)?;
        Self::with(consumer, cfg)
    }

    /// Reads every partition of `topics` without joining the group's
    /// rebalances: each partition starts at `resume` when listed there, else
    /// at the group's committed offset, else at the beginning.
    pub fn assign_all(
        cfg: &KafkaConfig,
        group_id: &str,
        topics: &[&str],
        resume: &[SourceOffset],
    ) -> Result<Self, KafkaError> {
        let consumer = group_consumer(cfg, group_id)?;
        let mut all = TopicPartitionList::new();
        for topic in topics {
            let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
            for t in metadata.topics() {
                for p in t.partitions() {
                    all.add_partition(t.name(), p.id());
                }
            }
        }
        let mut start = consumer.committed_offsets(all, METADATA_TIMEOUT)?;
        for element in start.clone().elements() {
            let resumed = resume
                .iter()
                .find(|r| r.topic == element.topic() && r.partition == element.partition());
            let offset = match (resumed, element.offset()) {
                (Some(r), _) => Offset::Offset(r.next),
                (None, Offset::Offset(o)) => Offset::Offset(o),
                (None, _) => Offset::Beginning,
            };
            start.set_partition_offset(element.topic(), element.partition(), offset)?;
        }
        consumer.assign(&start)?;
        Self::with(consumer, cfg)
    }

    fn with(consumer: StreamConsumer, cfg: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(Self {
            consumer,
            offsets: Arc::new(offsets_client(cfg)?),
            ids: HashMap::new(),
            partitions: Vec::new(),
            next_offsets: HashMap::new(),
            committed: HashMap::new(),
            resume_at: HashMap::new(),
        })
    }

    /// Resumes after a checkpoint: records before its offsets are skipped
    /// (the group's committed offsets may lag the checkpoint when the
    /// process died between saving it and committing).
    pub fn resume_from(&mut self, offsets: &[SourceOffset]) {
        for o in offsets {
            let id = self.source_id(&o.topic, o.partition);
            self.resume_at.insert(id, o.next);
            self.next_offsets.insert(id, o.next);
        }
    }

    /// Whether the record at `offset` of source `id` is new to the state.
    pub fn is_new(&self, id: u32, offset: i64) -> bool {
        self.resume_at.get(&id).is_none_or(|r| offset >= *r)
    }

    /// Where each partition read so far resumes, for a checkpoint.
    pub fn positions(&self) -> Vec<SourceOffset> {
        let mut out: Vec<SourceOffset> = self
            .next_offsets
            .iter()
            .map(|(id, next)| {
                let tp = &self.partitions[*id as usize];
                SourceOffset {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    next: *next,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    /// The next record.
    pub async fn recv(&self) -> Result<OwnedMessage, KafkaError> {
        self.consumer.recv().await.map(|m| m.detach())
    }

    /// The source id of a topic-partition, interning it on first sight.
    pub fn source_id(&mut self, topic: &str, partition: i32) -> u32 {
        let key = TopicPartition {
            topic: topic.to_owned(),
            partition,
        };
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = u32::try_from(self.partitions.len()).unwrap_or(u32::MAX);
        self.partitions.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    /// Notes that `offset` of source `id` was read.
    pub fn mark_read(&mut self, id: u32, offset: i64) {
        self.next_offsets.insert(id, offset + 1);
    }

    /// Source ids of the partitions currently assigned to this member.
    pub fn assigned(&mut self) -> Result<Vec<u32>, KafkaError> {
        let assignment = self.consumer.assignment()?;
        Ok(assignment
            .elements()
            .iter()
            .map(|e| self.source_id(e.topic(), e.partition()))
            .collect())
    }

    /// For each of `ids`, whether this member has read everything the broker
    /// holds for it. Asks the broker about all of them at once, each query
    /// bounded by [`OFFSET_QUERY_TIMEOUT`]; ids never seen are left out.
    pub async fn caught_up(&self, ids: &[u32]) -> Vec<(u32, Result<bool, KafkaError>)> {
        let queries = ids.iter().filter_map(|&id| {
            let tp = self.partitions.get(id as usize).cloned()?;
            let offsets = Arc::clone(&self.offsets);
            Some(async move {
                let high_low = tokio::task::spawn_blocking(move || {
                    offsets.fetch_watermarks(&tp.topic, tp.partition, OFFSET_QUERY_TIMEOUT)
                })
                .await
                .map_err(|_| KafkaError::Canceled)
                .and_then(|answer| answer);
                (id, high_low)
            })
        });
        futures::future::join_all(queries)
            .await
            .into_iter()
            .map(|(id, answer)| {
                let caught_up = answer.and_then(|(low, high)| {
                    let next = self.next_offsets.get(&id).copied();
                    Ok(high <= low
                        || next.is_some_and(|n| n >= high)
                        || self.committed_at_least(id, high)?)
                });
                (id, caught_up)
            })
            .collect()
    }

    fn committed_at_least(&self, id: u32, high: i64) -> Result<bool, KafkaError> {
        if self.next_offsets.contains_key(&id) {
            return Ok(false);
        }
        let position = self.consumer.position()?;
        let tp = &self.partitions[id as usize];
        Ok(position
            .find_partition(&tp.topic, tp.partition)
            .is_some_and(|e| matches!(e.offset(), Offset::Offset(o) if o >= high)))
    }

    /// Commits `positions`, those of a checkpoint once it is durable.
    /// Offsets already committed are not sent again; returns how many
    /// partitions were committed.
    pub fn commit(&mut self, positions: &[SourceOffset]) -> Result<usize, KafkaError> {
        let mut tpl = TopicPartitionList::new();
        let mut committing = Vec::new();
        for position in positions {
            let id = self.source_id(&position.topic, position.partition);
            if self.committed.get(&id) == Some(&position.next) {
                continue;
            }
            tpl.add_partition_offset(
                &position.topic,
                position.partition,
                Offset::Offset(position.next),
            )?;
            committing.push((id, position.next));
        }
        if tpl.count() > 0 {
            self.consumer.commit(&tpl, CommitMode::Sync)?;
            self.committed.extend(committing);
        }
        Ok(tpl.count())
    }
}
