//! The Kafka source: a consumer-group member reading a job's topics, with
//! the bookkeeping the runtime needs for watermarks, safe commits and
//! rebalances.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use livepulse_connectors::kafka::{KafkaConfig, group_consumer_with, offsets_client};
use livepulse_contract::record::Payload;
use livepulse_contract::topics::Topic;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};
use thiserror::Error;

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

/// A change of this member's partitions, as the group announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// These partition numbers are no longer this member's.
    Revoked(Vec<i32>),
    /// These partition numbers are now this member's.
    Assigned(Vec<i32>),
}

/// Rebalances, noted as the consumer announces them (inside its poll) for
/// the runtime to act on before it handles the next record.
#[derive(Default)]
pub struct RebalanceLog {
    changes: Mutex<Vec<Change>>,
}

impl RebalanceLog {
    fn note(&self, change: Change) {
        self.changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(change);
    }
}

fn partition_numbers(tpl: &TopicPartitionList) -> Vec<i32> {
    let mut numbers: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    numbers
}

impl ClientContext for RebalanceLog {}

impl ConsumerContext for RebalanceLog {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.note(Change::Revoked(partition_numbers(tpl)));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.note(Change::Assigned(partition_numbers(tpl)));
        }
    }
}

/// Why a job's topics cannot be read as it needs.
#[derive(Debug, Error)]
pub enum SourceError {
    /// The broker refused or failed a request.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// The topics are not co-partitioned.
    #[error(
        "the job's topics must have the same partition count (a stream's records share a partition number on every topic), found {0}"
    )]
    NotCoPartitioned(String),
    /// A topic the job reads does not exist.
    #[error("topic `{0}` does not exist (run `livepulse topics`)")]
    MissingTopic(String),
}

/// A consumer-group member, with topic-partitions interned as small source
/// ids so Arrow batches can carry their provenance in a `UInt32` column.
pub struct KafkaSource {
    consumer: StreamConsumer<RebalanceLog>,
    offsets: Arc<BaseConsumer>,
    payloads: HashMap<&'static str, Payload>,
    partition_count: i32,
    ids: HashMap<TopicPartition, u32>,
    partitions: Vec<TopicPartition>,
    /// Next offset to read, per source id, as far as this member has read.
    next_offsets: HashMap<u32, i64>,
    /// Offsets this member last committed, per source id.
    committed: HashMap<u32, i64>,
    /// Per source id, the offset the restored state resumes at: records
    /// below it are already in the state and are skipped.
    resume_at: HashMap<u32, i64>,
}

impl KafkaSource {
    /// A member of `group_id` for `topics`, which must exist and be
    /// co-partitioned; it reads nothing until [`Self::subscribe`] or
    /// [`Self::assign_all`].
    pub fn new(cfg: &KafkaConfig, group_id: &str, topics: &[Topic]) -> Result<Self, SourceError> {
        let consumer = group_consumer_with(cfg, group_id, RebalanceLog::default())?;
        let partition_count = co_partitions(&consumer, topics)?;
        Ok(Self {
            consumer,
            offsets: Arc::new(offsets_client(cfg)?),
            payloads: topics.iter().map(|t| (t.name, t.payload)).collect(),
            partition_count,
            ids: HashMap::new(),
            partitions: Vec::new(),
            next_offsets: HashMap::new(),
            committed: HashMap::new(),
            resume_at: HashMap::new(),
        })
    }

    /// Subscribes: the group's rebalances decide this member's partitions
    /// (see [`Self::take_changes`]).
    pub fn subscribe(&self) -> Result<(), SourceError> {
        let topics: Vec<&str> = self.payloads.keys().copied().collect();
        Ok(self.consumer.subscribe(&topics)?)
    }

    /// Reads every partition without joining the group's rebalances: each
    /// starts at `resume` when listed there, else at the group's committed
    /// offset, else at the beginning.
    pub fn assign_all(&mut self, resume: &[SourceOffset]) -> Result<(), SourceError> {
        let mut all = TopicPartitionList::new();
        for topic in self.payloads.keys() {
            for p in 0..self.partition_count {
                all.add_partition(topic, p);
            }
        }
        let mut start = self.consumer.committed_offsets(all, METADATA_TIMEOUT)?;
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
        self.consumer.assign(&start)?;
        self.resume_from(resume);
        Ok(())
    }

    /// The partition count every topic of the job has.
    pub fn partition_count(&self) -> i32 {
        self.partition_count
    }

    /// What the records of `topic` carry.
    pub fn payload(&self, topic: &str) -> Option<Payload> {
        self.payloads.get(topic).copied()
    }

    /// Rebalances announced since the last call, oldest first.
    pub fn take_changes(&self) -> Vec<Change> {
        std::mem::take(
            &mut *self
                .consumer
                .context()
                .changes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Resumes partitions after their state was restored (or kept): records
    /// before these offsets are already in the state and are skipped (the
    /// group's committed offsets may lag the state).
    pub fn resume_from(&mut self, offsets: &[SourceOffset]) {
        for o in offsets {
            let id = self.source_id(&o.topic, o.partition);
            self.resume_at.insert(id, o.next);
            self.next_offsets.insert(id, o.next);
        }
    }

    /// Forgets what this member read of partition number `partition` (its
    /// partitions went to another member).
    pub fn forget(&mut self, partition: i32) {
        for id in self.sources_of(partition) {
            self.resume_at.remove(&id);
            self.next_offsets.remove(&id);
            self.committed.remove(&id);
        }
    }

    /// Whether the record at `offset` of source `id` is new to the state.
    pub fn is_new(&self, id: u32, offset: i64) -> bool {
        self.resume_at.get(&id).is_none_or(|r| offset >= *r)
    }

    /// Where each source of partition number `partition` read so far
    /// resumes, for a checkpoint of its state.
    pub fn positions(&self, partition: i32) -> Vec<SourceOffset> {
        let mut out: Vec<SourceOffset> = self
            .next_offsets
            .iter()
            .filter_map(|(id, next)| {
                let tp = &self.partitions[*id as usize];
                (tp.partition == partition).then(|| SourceOffset {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    next: *next,
                })
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

    /// The topic-partition of a source id.
    pub fn topic_partition(&self, id: u32) -> Option<&TopicPartition> {
        self.partitions.get(id as usize)
    }

    fn sources_of(&self, partition: i32) -> Vec<u32> {
        self.ids
            .iter()
            .filter(|(tp, _)| tp.partition == partition)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Notes that `offset` of source `id` was read.
    pub fn mark_read(&mut self, id: u32, offset: i64) {
        self.next_offsets.insert(id, offset + 1);
    }

    /// Source ids of the topic-partitions currently assigned to this member.
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

/// The partition count shared by `topics`, or why there is none.
fn co_partitions(
    consumer: &StreamConsumer<RebalanceLog>,
    topics: &[Topic],
) -> Result<i32, SourceError> {
    let mut counts = Vec::with_capacity(topics.len());
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic.name), METADATA_TIMEOUT)?;
        let count = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic.name)
            .map_or(0, |t| t.partitions().len());
        if count == 0 {
            return Err(SourceError::MissingTopic(topic.name.to_owned()));
        }
        counts.push((topic.name, count));
    }
    match counts.first() {
        Some((_, first)) if counts.iter().all(|(_, c)| c == first) => {
            Ok(i32::try_from(*first).unwrap_or(i32::MAX))
        }
        _ => Err(SourceError::NotCoPartitioned(
            counts
                .iter()
                .map(|(name, count)| format!("{name}: {count}"))
                .collect::<Vec<_>>()
                .join(", "),
        )),
    }
}
