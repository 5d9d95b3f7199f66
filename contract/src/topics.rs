//! Kafka topics, with the partition count the project creates them with.

use crate::Family;

/// A topic and the partition count `livepulse topics create` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    /// Topic name; the `.v1` suffix follows the contract's schema version.
    pub name: &'static str,
    /// Partition count. Records are keyed by `stream_id`, so this bounds how
    /// many pipeline instances can share one job.
    pub partitions: i32,
}

/// Player telemetry: the busiest topic.
pub const PLAYER_EVENTS: Topic = Topic {
    name: "livepulse.player.v1",
    partitions: 8,
};
/// Chat, likes, gifts, follows, subscriptions, shares.
pub const CHAT_EVENTS: Topic = Topic {
    name: "livepulse.chat.v1",
    partitions: 8,
};
/// Stream lifecycle (start/end).
pub const STREAM_EVENTS: Topic = Topic {
    name: "livepulse.stream.v1",
    partitions: 2,
};

/// The HLS origin's playback request log: [`PlaybackBatch`] records, each
/// carrying many requests of one stream.
///
/// [`PlaybackBatch`]: crate::playback::PlaybackBatch
pub const PLAYBACK_REQUESTS: Topic = Topic {
    name: "livepulse.playback-requests.v1",
    partitions: 8,
};

/// Records a pipeline could not use: undecodable records and events beyond
/// a job's correction horizon, each with a `reason` header.
pub const DEAD_LETTER: Topic = Topic {
    name: "livepulse.dead-letter.v1",
    partitions: 2,
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
