//! A monotone time queue (a calendar queue): items come out by time, ties
//! in push order, exactly as a binary heap keyed by (time, push sequence)
//! would give them, but in O(1) for the near future.
//!
//! Simulated time only moves forward and almost everything is scheduled
//! less than a minute ahead, so a ring of one-millisecond buckets holds the
//! near future and a heap only the rare far-future items. A binary heap of
//! a hundred thousand actions costs a cache miss per level on every pop;
//! this costs about one.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Buckets in the ring: the near future covers this many milliseconds.
const RING: usize = 1 << 16;
const MASK: i64 = RING as i64 - 1;

pub(crate) struct Calendar<T> {
    /// Bucket `t & MASK` holds the items due at `t`, for `cursor <= t < cursor + RING`.
    ring: Vec<Vec<T>>,
    /// The earliest time whose bucket may still hold items.
    cursor: i64,
    /// Items of the cursor's bucket already popped.
    head: usize,
    /// Items due at or after `cursor + RING`.
    far: BinaryHeap<Reverse<Far<T>>>,
    /// Push order of far items, to keep ties in push order.
    far_seq: u64,
    /// Items in the ring, so an empty stretch of time is skipped at once.
    in_ring: usize,
}

impl<T: Copy> Calendar<T> {
    /// An empty calendar whose time starts at `start`.
    pub(crate) fn new(start: i64) -> Self {
        Self {
            ring: (0..RING).map(|_| Vec::new()).collect(),
            cursor: start,
            head: 0,
            far: BinaryHeap::new(),
            far_seq: 0,
            in_ring: 0,
        }
    }

    /// Schedules `item` at `at`; a time already passed counts as the
    /// current one.
    pub(crate) fn push(&mut self, at: i64, item: T) {
        let at = at.max(self.cursor);
        if at - self.cursor < RING as i64 {
            self.ring[(at & MASK) as usize].push(item);
            self.in_ring += 1;
        } else {
            self.far.push(Reverse(Far {
                at,
                seq: self.far_seq,
                item,
            }));
            self.far_seq += 1;
        }
    }

    /// The next item due before `until`, with its time.
    pub(crate) fn pop_before(&mut self, until: i64) -> Option<(i64, T)> {
        while self.cursor < until {
            let bucket = &mut self.ring[(self.cursor & MASK) as usize];
            if let Some(&item) = bucket.get(self.head) {
                self.head += 1;
                self.in_ring -= 1;
                return Some((self.cursor, item));
            }
            bucket.clear();
            self.head = 0;
            self.cursor = if self.in_ring == 0 {
                // Nothing near: jump to where the next far item comes within reach.
                let next_far = self.far.peek().map_or(i64::MAX, |next| next.0.at);
                (self.cursor + 1)
                    .max(next_far.saturating_sub(MASK))
                    .min(until)
            } else {
                self.cursor + 1
            };
            // Far items enter the ring as their time comes within reach,
            // before anything can be pushed to their bucket directly, so
            // they keep their place ahead of later pushes.
            let reach = self.cursor.saturating_add(RING as i64);
            while self.far.peek().is_some_and(|next| next.0.at < reach) {
                if let Some(Reverse(next)) = self.far.pop() {
                    self.ring[(next.at & MASK) as usize].push(next.item);
                    self.in_ring += 1;
                }
            }
        }
        None
    }
}

/// A far-future item, ordered by (time, push order).
struct Far<T> {
    at: i64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Far<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for Far<T> {}

impl<T> PartialOrd for Far<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Far<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::random::SimRng;

    /// Against a binary heap keyed by (time, push order), with pushes
    /// interleaved with pops, near and far, and pops in uneven chunks.
    #[test]
    fn pops_like_a_heap_keyed_by_time_and_push_order() {
        let mut rng = SimRng::seed_from_u64(1);
        let mut calendar = Calendar::new(0);
        let mut heap = BinaryHeap::new();
        let mut seq = 0u64;
        let mut now = 0i64;
        let mut until = 0i64;
        let mut popped = 0;
        for _ in 0..200 {
            until += rng.random_range(0..5_000);
            let mut pushes = rng.random_range(0..30);
            loop {
                for _ in 0..pushes {
                    let ahead = if rng.random_bool(0.1) {
                        rng.random_range(0..400_000)
                    } else {
                        rng.random_range(0..50)
                    };
                    calendar.push(now + ahead, seq);
                    heap.push(Reverse((now + ahead, seq)));
                    seq += 1;
                }
                let expected = match heap.peek() {
                    Some(&Reverse((at, s))) if at < until => {
                        heap.pop();
                        Some((at, s))
                    }
                    _ => None,
                };
                assert_eq!(calendar.pop_before(until), expected);
                // Fewer than one push per pop on average, so each chunk ends.
                pushes = rng.random_range(0..2);
                match expected {
                    Some((at, _)) => {
                        now = at;
                        popped += 1;
                    }
                    None => {
                        // The calendar's time has moved on to `until`.
                        now = now.max(until);
                        break;
                    }
                }
            }
        }
        assert!(popped > 1_000, "{popped}");
    }
}
