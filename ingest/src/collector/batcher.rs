//! Accepted events of all requests, packed into one open record per (topic,
//! partition) and produced when it is full or has lingered `linger_ms`.
//!
//! Packing across requests is what keeps the broker's per-record cost off
//! the event rate: at thousands of events per second a record carries
//! hundreds of events instead of the few one request holds. A request waits
//! for the verdict on every record its events went into, so a 200 still
//! means the broker acknowledged all of them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use livepulse_contract::Event;
use livepulse_contract::arrow::EventColumns;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::batch::{PackError, Record, destination, is_full, seal};
use super::sink::{self, DeliveryError, ProducerSlot};

/// The broker's verdict on one record, shared by the requests in it.
type Verdict = Option<Result<(), Arc<DeliveryError>>>;

/// A request's claim on the record its events went into.
pub(crate) struct Receipt(watch::Receiver<Verdict>);

impl Receipt {
    /// The verdict; a record dropped without one (shutdown) is `Canceled`.
    pub(crate) async fn verdict(mut self) -> Result<(), Arc<DeliveryError>> {
        match self.0.wait_for(Option::is_some).await {
            Ok(verdict) => verdict.clone().unwrap_or(Ok(())),
            Err(_) => Err(Arc::new(DeliveryError::Canceled)),
        }
    }
}

struct Open {
    columns: EventColumns,
    verdict: watch::Sender<Verdict>,
}

impl Open {
    fn new() -> Self {
        Self {
            columns: EventColumns::default(),
            verdict: watch::channel(None).0,
        }
    }
}

#[derive(Default)]
struct Records {
    open: HashMap<(&'static str, i32), Open>,
    /// Full records, in the order they filled.
    full: Vec<((&'static str, i32), Open)>,
}

/// The open records, shared by request handlers and the flusher.
pub(crate) struct Batcher {
    records: Mutex<Records>,
    full: Notify,
    max_record_bytes: usize,
}

impl Batcher {
    pub(crate) fn new(max_record_bytes: usize) -> Self {
        Self {
            records: Mutex::new(Records::default()),
            full: Notify::new(),
            max_record_bytes,
        }
    }

    /// Adds accepted events received at `received_ms` to their open records;
    /// one receipt per record they went into.
    pub(crate) fn append(
        &self,
        events: &[Event<'_>],
        received_ms: i64,
    ) -> Result<Vec<Receipt>, PackError> {
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let mut receipts: Vec<(usize, Receipt)> = Vec::new();
        let mut filled = false;
        for event in events {
            let key = destination(event)?;
            let open = records.open.entry(key).or_insert_with(Open::new);
            open.columns.push(event, received_ms)?;
            // One receipt per record: the sender's address identifies it.
            let id = std::ptr::from_ref(&open.verdict) as usize;
            if !receipts.iter().any(|(r, _)| *r == id) {
                receipts.push((id, Receipt(open.verdict.subscribe())));
            }
            if is_full(&open.columns, self.max_record_bytes)
                && let Some(full) = records.open.remove(&key)
            {
                records.full.push((key, full));
                filled = true;
            }
        }
        drop(records);
        if filled {
            self.full.notify_one();
        }
        Ok(receipts.into_iter().map(|(_, r)| r).collect())
    }

    /// Produces full records at once and every open one each `linger`, until
    /// `stop`; then produces what is left.
    pub(crate) async fn run(
        self: Arc<Self>,
        slot: Arc<ProducerSlot>,
        linger: Duration,
        delivery_timeout: Duration,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(linger);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let all = tokio::select! {
                _ = tick.tick() => true,
                () = self.full.notified() => false,
                () = stop.cancelled() => break,
            };
            self.flush(&slot, all, delivery_timeout);
        }
        self.flush(&slot, true, delivery_timeout);
    }

    /// Seals the full records (and, with `all`, the open ones) and produces
    /// them in the background, in order.
    fn flush(&self, slot: &Arc<ProducerSlot>, all: bool, delivery_timeout: Duration) {
        let taken = {
            let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
            let mut taken = std::mem::take(&mut records.full);
            if all {
                taken.extend(records.open.drain());
            }
            taken
        };
        if taken.is_empty() {
            return;
        }
        let mut sealed: Vec<(Record, watch::Sender<Verdict>)> = Vec::with_capacity(taken.len());
        for (key, mut open) in taken {
            match seal(key, &mut open.columns) {
                Ok(record) => sealed.push((record, open.verdict)),
                Err(err) => {
                    warn!(error = %err, "cannot encode a record");
                    let failed = Err(Arc::new(DeliveryError::Encode(err.to_string())));
                    open.verdict.send_replace(Some(failed));
                }
            }
        }
        let (records, senders): (Vec<Record>, Vec<_>) = sealed.into_iter().unzip();
        // Enqueued here, before the next flush: a partition's records reach
        // the producer in order.
        let delivery = sink::deliver(slot, &records, delivery_timeout);
        tokio::spawn(async move {
            let mut verdicts = delivery.await.into_iter();
            for sender in senders {
                let verdict = verdicts
                    .next()
                    .unwrap_or(Err(DeliveryError::Canceled))
                    .map_err(Arc::new);
                sender.send_replace(Some(verdict));
            }
        });
    }
}
