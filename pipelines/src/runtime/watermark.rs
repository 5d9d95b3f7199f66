//! Event-time watermarks, tracked per source partition and combined as the
//! minimum, so one partition that is read ahead of another cannot make the
//! other's events late.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Partition {
    max_ts: Option<i64>,
    last_event: Instant,
    caught_up: bool,
    /// When the broker was last asked whether this partition is caught up.
    asked: Option<Instant>,
}

impl Partition {
    fn new(now: Instant) -> Self {
        Self {
            max_ts: None,
            last_event: now,
            caught_up: false,
            asked: None,
        }
    }
}

/// Per-partition event-time progress.
///
/// ```
/// use std::time::{Duration, Instant};
/// use livepulse_pipelines::runtime::watermark::Watermarks;
///
/// let mut wm = Watermarks::new(1_000, Duration::from_secs(3));
/// let now = Instant::now();
/// wm.assign(0, now);
/// wm.assign(1, now);
/// wm.observe(0, 50_000, now);
/// assert_eq!(wm.advance(now, 0), None); // partition 1 has not spoken yet
/// wm.observe(1, 20_000, now);
/// assert_eq!(wm.advance(now, 0), Some(19_000)); // min(50s, 20s) - 1s lateness
/// ```
#[derive(Debug)]
pub struct Watermarks {
    partitions: HashMap<u32, Partition>,
    lateness_ms: i64,
    idle_timeout: Duration,
    current: Option<i64>,
}

impl Watermarks {
    /// A tracker with the given allowed lateness and idle timeout.
    pub fn new(lateness_ms: i64, idle_timeout: Duration) -> Self {
        Self {
            partitions: HashMap::new(),
            lateness_ms,
            idle_timeout,
            current: None,
        }
    }

    /// Starts tracking a partition (on assignment); it holds the watermark
    /// back until it delivers an event or proves idle.
    pub fn assign(&mut self, source: u32, now: Instant) {
        self.partitions
            .entry(source)
            .or_insert_with(|| Partition::new(now));
    }

    /// Stops tracking a partition (on revocation).
    pub fn revoke(&mut self, source: u32) {
        self.partitions.remove(&source);
    }

    /// The watermark as last advanced.
    pub fn current(&self) -> Option<i64> {
        self.current
    }

    /// Resumes from a checkpointed watermark: it never moves below it.
    pub fn restore(&mut self, watermark: Option<i64>) {
        self.current = watermark;
    }

    /// Records an event time seen on a partition.
    pub fn observe(&mut self, source: u32, ts: i64, now: Instant) {
        let p = self
            .partitions
            .entry(source)
            .or_insert_with(|| Partition::new(now));
        p.max_ts = Some(p.max_ts.map_or(ts, |m| m.max(ts)));
        p.last_event = now;
        p.caught_up = false;
    }

    /// Partitions silent for the idle timeout whose catch-up state is unknown;
    /// the caller asks the broker and reports back with [`Self::set_caught_up`].
    /// Each partition is returned at most once per idle timeout, so a slow
    /// broker is not asked about the same partition on every flush.
    pub fn silent(&mut self, now: Instant) -> Vec<u32> {
        let idle_timeout = self.idle_timeout;
        let mut silent: Vec<u32> = self
            .partitions
            .iter_mut()
            .filter(|(_, p)| {
                !p.caught_up
                    && now.duration_since(p.last_event) >= idle_timeout
                    && p.asked
                        .is_none_or(|at| now.duration_since(at) >= idle_timeout)
            })
            .map(|(s, p)| {
                p.asked = Some(now);
                *s
            })
            .collect();
        silent.sort_unstable();
        silent
    }

    /// Marks a partition as having no unread records.
    pub fn set_caught_up(&mut self, source: u32) {
        if let Some(p) = self.partitions.get_mut(&source) {
            p.caught_up = true;
        }
    }

    fn is_idle(&self, p: &Partition, now: Instant) -> bool {
        p.caught_up && now.duration_since(p.last_event) >= self.idle_timeout
    }

    /// The watermark now: the minimum over non-idle partitions of their max
    /// event time, minus the lateness; the wall clock (`now_ms`) minus the
    /// lateness when every partition is idle. Never moves backwards.
    pub fn advance(&mut self, now: Instant, now_ms: i64) -> Option<i64> {
        self.current = self.peek(now, now_ms);
        self.current
    }

    /// What [`Self::advance`] would return, without advancing.
    pub fn peek(&self, now: Instant, now_ms: i64) -> Option<i64> {
        let mut active = self
            .partitions
            .values()
            .filter(|p| !self.is_idle(p, now))
            .peekable();
        let candidate = if active.peek().is_none() {
            (!self.partitions.is_empty()).then_some(now_ms)
        } else {
            // A partition that delivered nothing yet holds it back.
            active.try_fold(i64::MAX, |min, p| Some(min.min(p.max_ts?)))
        };
        match candidate.map(|ts| ts - self.lateness_ms) {
            Some(wm) => Some(self.current.map_or(wm, |c| c.max(wm))),
            None => self.current,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_partitions_stop_holding_the_watermark() {
        let start = Instant::now();
        let mut wm = Watermarks::new(0, Duration::from_secs(2));
        wm.assign(0, start);
        wm.assign(1, start);
        wm.observe(0, 10_000, start);
        assert_eq!(wm.advance(start, 99_000), None);
        let later = start + Duration::from_secs(3);
        assert_eq!(wm.silent(later), vec![0, 1]);
        // Not asked again until another idle timeout has passed.
        assert_eq!(wm.silent(later), Vec::<u32>::new());
        assert_eq!(wm.silent(later + Duration::from_secs(2)), vec![0, 1]);
        // Silent but not caught up (the broker still has records): still holds.
        assert_eq!(wm.advance(later, 99_000), None);
        wm.set_caught_up(1);
        assert_eq!(wm.peek(later, 99_000), Some(10_000));
        assert_eq!(wm.current(), None, "peeking does not advance");
        assert_eq!(wm.advance(later, 99_000), Some(10_000));
        wm.set_caught_up(0);
        assert_eq!(wm.advance(later, 99_000), Some(99_000));
        // New data does not move it back.
        wm.observe(0, 50_000, later);
        assert_eq!(wm.advance(later, 99_000), Some(99_000));
    }
}
