//! The playback request log: a response body that measures how its bytes
//! leave and logs the request when it finished or was abandoned.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use livepulse_contract::playback::PlaybackRequest;
use metrics::counter;

use super::metrics::PLAYBACK_BYTES;
use super::sink::Sink;

/// Largest body frame: small enough that first and last byte differ
/// measurably for large segments, large enough to cost nothing.
const FRAME_BYTES: usize = 64 * 1024;

/// A request waiting for its response to finish.
#[derive(Debug)]
struct Pending {
    record: PlaybackRequest,
    received: Instant,
    sink: Sink,
}

/// A response body that logs its request when it ends: on its last frame,
/// or when the connection drops it early (client gone, `HEAD`).
#[derive(Debug)]
pub(crate) struct Metered {
    rest: Bytes,
    total: usize,
    first_frame: Option<Instant>,
    pending: Option<Pending>,
}

impl Metered {
    /// `body` as a response body logging `record` (whose timing and size
    /// fields are filled in here) to `sink`.
    pub(crate) fn new(body: Bytes, record: PlaybackRequest, received: Instant, sink: Sink) -> Self {
        Self {
            total: body.len(),
            rest: body,
            first_frame: None,
            pending: Some(Pending {
                record,
                received,
                sink,
            }),
        }
    }

    fn finish(&mut self, now: Instant) {
        let Some(Pending {
            mut record,
            received,
            sink,
        }) = self.pending.take()
        else {
            return;
        };
        let sent = self.total - self.rest.len();
        let micros = |at: Instant| u64::try_from(at.duration_since(received).as_micros()).ok();
        record.bytes_sent = sent as u64;
        record.complete = self.rest.is_empty();
        record.ttfb_us = self.first_frame.filter(|_| sent > 0).and_then(micros);
        record.ttlb_us = if record.complete { micros(now) } else { None };
        counter!(PLAYBACK_BYTES).increment(sent as u64);
        sink.log(record);
    }
}

impl Body for Metered {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        let now = Instant::now();
        if this.rest.is_empty() {
            this.finish(now);
            return Poll::Ready(None);
        }
        this.first_frame.get_or_insert(now);
        let frame = this.rest.split_to(this.rest.len().min(FRAME_BYTES));
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.rest.len() as u64)
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.finish(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use livepulse_contract::playback::ObjectKind;

    use super::*;
    use crate::origin::sink;

    fn record() -> PlaybackRequest {
        PlaybackRequest {
            request_id: "00000000-0000-4000-8000-000000000000".into(),
            received_ms: 0,
            stream_id: "s".into(),
            rendition: None,
            object: "a.ts".into(),
            object_kind: ObjectKind::Segment,
            status: 200,
            bytes_sent: 0,
            complete: false,
            ttfb_us: None,
            ttlb_us: None,
            client_cohort: "unknown".into(),
            cmcd: None,
        }
    }

    #[tokio::test]
    async fn logs_complete_and_abandoned_bodies() {
        let (sink, mut rx) = sink::channel(8);
        let body = Bytes::from(vec![7u8; 3 * FRAME_BYTES + 5]);
        let metered = Metered::new(body.clone(), record(), Instant::now(), sink.clone());
        let collected = metered.collect().await.unwrap().to_bytes();
        assert_eq!(collected, body);
        let logged = rx.try_request().unwrap();
        assert_eq!(logged.bytes_sent, body.len() as u64);
        assert!(logged.complete);
        assert!(logged.ttfb_us.unwrap() <= logged.ttlb_us.unwrap());

        let mut abandoned = Metered::new(body, record(), Instant::now(), sink.clone());
        let first = abandoned.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap().len(), FRAME_BYTES);
        drop(abandoned);
        let logged = rx.try_request().unwrap();
        assert_eq!(logged.bytes_sent, FRAME_BYTES as u64);
        assert!(!logged.complete);
        assert!(logged.ttfb_us.is_some() && logged.ttlb_us.is_none());

        drop(Metered::new(
            Bytes::from_static(b"x"),
            record(),
            Instant::now(),
            sink,
        ));
        let logged = rx.try_request().unwrap();
        assert_eq!(
            (logged.bytes_sent, logged.complete, logged.ttfb_us),
            (0, false, None)
        );
    }
}
