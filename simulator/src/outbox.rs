//! Events waiting to be sent, ordered by send time: where disorder and
//! duplicates are applied.

use livepulse_contract::Event;

use crate::calendar::Calendar;
use crate::random::{SimRng, between, chance};

/// Share of events that are sent promptly (within a tenth of the disorder
/// bound); the rest spread over the whole bound, as batched and retried
/// client uploads do.
const PROMPT_SHARE: f64 = 0.8;

/// The send queue: slots of the event slab by send time, ties in push
/// order. Events stay in the slab, so the queue's buckets stay small.
pub(crate) struct Outbox {
    queue: Calendar<u32>,
    slots: Vec<Option<Event<'static>>>,
    free: Vec<u32>,
    max_disorder_ms: i64,
    duplicate_rate: f64,
}

impl Outbox {
    /// An empty queue; nothing is sent before epoch ms `start_ms`.
    pub(crate) fn new(start_ms: i64, max_disorder_ms: u32, duplicate_rate: f64) -> Self {
        Self {
            queue: Calendar::new(start_ms),
            slots: Vec::new(),
            free: Vec::new(),
            max_disorder_ms: i64::from(max_disorder_ms),
            duplicate_rate,
        }
    }

    /// Schedules `event` for sending at most `max_disorder_ms` after its
    /// `ts`, and maybe a copy no earlier than the original.
    pub(crate) fn push(&mut self, rng: &mut SimRng, event: Event<'static>) {
        let ts = event.ts;
        let spread = if chance(rng, PROMPT_SHARE) {
            self.max_disorder_ms / 10
        } else {
            self.max_disorder_ms
        };
        let send = ts + between(rng, 0, spread + 1);
        if chance(rng, self.duplicate_rate) {
            let again = between(rng, send, ts + self.max_disorder_ms + 1);
            let copy = event.clone();
            self.insert(send, event);
            self.insert(again, copy);
        } else {
            self.insert(send, event);
        }
    }

    fn insert(&mut self, send_ms: i64, event: Event<'static>) {
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                // More than 4 billion events in flight at once is out of reach
                // (each is hundreds of bytes).
                (self.slots.len() - 1) as u32
            }
        };
        self.queue.push(send_ms, slot);
    }

    /// Moves every event due before `until_ms` into `out`, in send order.
    pub(crate) fn drain_until(&mut self, until_ms: i64, out: &mut Vec<Event<'static>>) {
        while let Some((_, slot)) = self.queue.pop_before(until_ms) {
            if let Some(event) = self.slots[slot as usize].take() {
                out.push(event);
            }
            self.free.push(slot);
        }
    }
}
