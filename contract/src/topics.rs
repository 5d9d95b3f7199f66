//! Kafka topics, with the partition count the project creates them with,
//! and the one rule that places a stream's records in a partition.
//!
//! Every topic a job reads is *co-partitioned*: the same partition count,
//! and a stream's records in the partition [`partition_for`] gives, on every
//! topic. So partition `p` of each topic holds the same streams, and a
//! pipeline instance owning partition `p` of every topic holds all the state
//! of those streams (Kafka Streams calls this a task).

use crate::Family;
use crate::record::Payload;

/// A topic and the partition count `livepulse topics create` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    /// Topic name; the `.v1` suffix follows the contract's schema version.
    pub name: &'static str,
    /// Partition count. A stream's records all go to one partition, so this
    /// bounds how many pipeline instances can share one job.
    pub partitions: i32,
    /// What its records carry.
    pub payload: Payload,
}

/// Partitions of every topic a job reads ([`PLAYER_EVENTS`],
/// [`CHAT_EVENTS`], [`STREAM_EVENTS`], [`PLAYBACK_REQUESTS`]).
pub const STREAM_PARTITIONS: i32 = 8;

/// The partition of `stream_id` in a topic of `partitions` partitions:
/// Kafka's default partitioner for a record keyed by the stream id (murmur2
/// of the key, made positive, modulo the count), so producers in any
/// language that key by `stream_id` agree with livepulse's own.
///
/// ```
/// use livepulse_contract::topics::partition_for;
///
/// assert_eq!(partition_for("speedrun", 8), partition_for("speedrun", 8));
/// assert!((0..8).contains(&partition_for("speedrun", 8)));
/// ```
pub fn partition_for(stream_id: &str, partitions: i32) -> i32 {
    let positive = murmur2(stream_id.as_bytes()) & 0x7fff_ffff;
    positive % partitions.max(1)
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Player telemetry: the busiest topic.
pub const PLAYER_EVENTS: Topic = Topic {
    name: "livepulse.player.v1",
    partitions: STREAM_PARTITIONS,
    payload: Payload::Events,
};
/// Chat, likes, gifts, follows, subscriptions, shares.
pub const CHAT_EVENTS: Topic = Topic {
    name: "livepulse.chat.v1",
    partitions: STREAM_PARTITIONS,
    payload: Payload::Events,
};
/// Stream lifecycle (start/end) and ingest health.
pub const STREAM_EVENTS: Topic = Topic {
    name: "livepulse.stream.v1",
    partitions: STREAM_PARTITIONS,
    payload: Payload::Events,
};

/// The HLS origin's playback request log: many requests per record.
pub const PLAYBACK_REQUESTS: Topic = Topic {
    name: "livepulse.playback-requests.v1",
    partitions: STREAM_PARTITIONS,
    payload: Payload::PlaybackRequests,
};

/// Records a pipeline could not use: undecodable records and events beyond
/// a job's correction horizon, each with a `reason` header.
pub const DEAD_LETTER: Topic = Topic {
    name: "livepulse.dead-letter.v1",
    partitions: 2,
    payload: Payload::DeadLetters,
};

/// Every topic the project owns.
pub const ALL: [Topic; 5] = [
    PLAYER_EVENTS,
    CHAT_EVENTS,
    STREAM_EVENTS,
    PLAYBACK_REQUESTS,
    DEAD_LETTER,
];

/// The topic a family's events are produced to.
///
/// ```
/// use livepulse_contract::{topics, Family};
/// assert_eq!(topics::for_family(Family::Chat).name, "livepulse.chat.v1");
/// ```
pub fn for_family(family: Family) -> Topic {
    match family {
        Family::Player => PLAYER_EVENTS,
        Family::Chat => CHAT_EVENTS,
        Family::Stream => STREAM_EVENTS,
    }
}

/// The topic called `name`, among [`ALL`].
///
/// ```
/// use livepulse_contract::topics;
/// assert_eq!(topics::named("livepulse.chat.v1"), Some(topics::CHAT_EVENTS));
/// ```
pub fn named(name: &str) -> Option<Topic> {
    ALL.into_iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_is_kafkas() {
        // The vectors of Kafka's own UtilsTest.
        for (key, hash) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()), hash, "{key}");
        }
    }

    #[test]
    fn job_topics_are_co_partitioned() {
        for topic in [PLAYER_EVENTS, CHAT_EVENTS, STREAM_EVENTS, PLAYBACK_REQUESTS] {
            assert_eq!(topic.partitions, STREAM_PARTITIONS, "{}", topic.name);
        }
        let spread: std::collections::BTreeSet<i32> = (0..64)
            .map(|i| partition_for(&format!("stream-{i}"), STREAM_PARTITIONS))
            .collect();
        assert_eq!(spread.len(), STREAM_PARTITIONS as usize);
    }
}
