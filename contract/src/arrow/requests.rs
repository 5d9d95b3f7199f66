//! The playback request schema and [`RequestColumns`], which builds batches
//! of it from [`PlaybackRequest`]s.
//!
//! A request's `request_id` is its `event_id`, its receipt its `ts`, the
//! CMCD session id its `session_id` and its object kind its `event` (with
//! `event_type` = [`REQUEST`]), so jobs read requests beside player events.
//! The CMCD keys keep their CTA-5004 names behind a `cmcd_` prefix
//! (`cmcd_br`, `cmcd_bl`, `cmcd_su`, ...); see [`Cmcd`] for each.

use std::sync::{Arc, LazyLock};

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef};

use super::col;
use crate::playback::{Cmcd, PlaybackRequest};

/// The `event_type` of every playback request row.
pub const REQUEST: &str = "request";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    let uint64 = |name: &str| Field::new(name, DataType::UInt64, true);
    let flag = |name: &str| Field::new(name, DataType::Boolean, true);
    Arc::new(Schema::new(vec![
        Field::new(col::EVENT_ID, DataType::Utf8, false),
        Field::new(col::TS, DataType::Int64, false),
        Field::new(col::STREAM_ID, DataType::Utf8, false),
        Field::new(col::EVENT_TYPE, DataType::Utf8, false),
        Field::new(col::EVENT, DataType::Utf8, false),
        text("session_id"),
        text("rendition"),
        text("cdn"),
        Field::new("object", DataType::Utf8, false),
        Field::new("status", DataType::UInt32, false),
        Field::new("bytes_sent", DataType::UInt64, false),
        Field::new("complete", DataType::Boolean, false),
        uint64("ttfb_us"),
        uint64("ttlb_us"),
        Field::new("client_cohort", DataType::Utf8, false),
        uint64("cmcd_br"),
        uint64("cmcd_d"),
        text("cmcd_ot"),
        uint64("cmcd_tb"),
        uint64("cmcd_bl"),
        uint64("cmcd_dl"),
        uint64("cmcd_mtp"),
        text("cmcd_nor"),
        text("cmcd_nrr"),
        flag("cmcd_su"),
        text("cmcd_cid"),
        Field::new("cmcd_pr", DataType::Float64, true),
        text("cmcd_sf"),
        text("cmcd_st"),
        uint64("cmcd_v"),
        flag("cmcd_bs"),
        uint64("cmcd_rtp"),
        uint64("cmcd_ltc"),
        uint64("cmcd_pt"),
        uint64("cmcd_sn"),
        text("cmcd_sta"),
        uint64("cmcd_dfa"),
        text("cmcd_ec"),
        uint64("cmcd_msd"),
        uint64("cmcd_bsa"),
        uint64("cmcd_bsd"),
    ]))
});

/// The schema of a decoded playback request batch.
///
/// ```
/// let schema = livepulse_contract::arrow::request_schema();
/// assert_eq!(schema.field(0).name(), "event_id");
/// assert!(schema.field_with_name("cmcd_br").is_ok());
/// ```
pub fn request_schema() -> SchemaRef {
    SCHEMA.clone()
}

/// Builds playback request batches in [`request_schema`];
/// [`finish`](Self::finish) yields the batch and starts over.
#[derive(Default)]
pub struct RequestColumns {
    event_id: StringBuilder,
    ts: Int64Builder,
    stream_id: StringBuilder,
    event_type: StringBuilder,
    event: StringBuilder,
    session_id: StringBuilder,
    rendition: StringBuilder,
    cdn: StringBuilder,
    object: StringBuilder,
    status: UInt32Builder,
    bytes_sent: UInt64Builder,
    complete: BooleanBuilder,
    ttfb_us: UInt64Builder,
    ttlb_us: UInt64Builder,
    client_cohort: StringBuilder,
    br: UInt64Builder,
    d: UInt64Builder,
    ot: StringBuilder,
    tb: UInt64Builder,
    bl: UInt64Builder,
    dl: UInt64Builder,
    mtp: UInt64Builder,
    nor: StringBuilder,
    nrr: StringBuilder,
    su: BooleanBuilder,
    cid: StringBuilder,
    pr: Float64Builder,
    sf: StringBuilder,
    st: StringBuilder,
    v: UInt64Builder,
    bs: BooleanBuilder,
    rtp: UInt64Builder,
    ltc: UInt64Builder,
    pt: UInt64Builder,
    sn: UInt64Builder,
    sta: StringBuilder,
    dfa: UInt64Builder,
    ec: StringBuilder,
    msd: UInt64Builder,
    bsa: UInt64Builder,
    bsd: UInt64Builder,
    rows: usize,
    text_bytes: usize,
}

impl RequestColumns {
    /// Appends one request.
    pub fn push(&mut self, r: &PlaybackRequest) {
        self.text_bytes += r.request_id.len()
            + r.stream_id.len()
            + r.object.len()
            + r.client_cohort.len()
            + r.rendition.as_ref().map_or(0, String::len)
            + r.cmcd.as_ref().map_or(0, cmcd_text_bytes);
        self.event_id.append_value(&r.request_id);
        self.ts.append_value(r.received_ms);
        self.stream_id.append_value(&r.stream_id);
        self.event_type.append_value(REQUEST);
        self.event.append_value(r.object_kind.as_str());
        let cmcd = r.cmcd.as_ref();
        let c = |f: fn(&Cmcd) -> Option<u64>| cmcd.and_then(f);
        let s = |f: fn(&Cmcd) -> Option<&String>| cmcd.and_then(f).map(String::as_str);
        let b = |f: fn(&Cmcd) -> Option<bool>| cmcd.and_then(f);
        self.session_id.append_option(s(|c| c.session_id.as_ref()));
        self.rendition.append_option(r.rendition.as_deref());
        self.cdn.append_option(s(|c| c.cdn.as_ref()));
        self.object.append_value(&r.object);
        self.status.append_value(u32::from(r.status));
        self.bytes_sent.append_value(r.bytes_sent);
        self.complete.append_value(r.complete);
        self.ttfb_us.append_option(r.ttfb_us);
        self.ttlb_us.append_option(r.ttlb_us);
        self.client_cohort.append_value(&r.client_cohort);
        self.br.append_option(c(|c| c.encoded_bitrate_kbps));
        self.d.append_option(c(|c| c.object_duration_ms));
        self.ot.append_option(s(|c| c.object_type.as_ref()));
        self.tb.append_option(c(|c| c.top_bitrate_kbps));
        self.bl.append_option(c(|c| c.buffer_length_ms));
        self.dl.append_option(c(|c| c.deadline_ms));
        self.mtp.append_option(c(|c| c.measured_throughput_kbps));
        self.nor
            .append_option(s(|c| c.next_object_request.as_ref()));
        self.nrr.append_option(s(|c| c.next_range_request.as_ref()));
        self.su.append_option(b(|c| c.startup));
        self.cid.append_option(s(|c| c.content_id.as_ref()));
        self.pr.append_option(cmcd.and_then(|c| c.playback_rate));
        self.sf.append_option(s(|c| c.streaming_format.as_ref()));
        self.st.append_option(s(|c| c.stream_type.as_ref()));
        self.v.append_option(c(|c| c.version));
        self.bs.append_option(b(|c| c.buffer_starvation));
        self.rtp
            .append_option(c(|c| c.requested_max_throughput_kbps));
        self.ltc.append_option(c(|c| c.live_latency_ms));
        self.pt.append_option(c(|c| c.playhead_time_ms));
        self.sn.append_option(c(|c| c.sequence_number));
        self.sta.append_option(s(|c| c.player_state.as_ref()));
        self.dfa.append_option(c(|c| c.dropped_frames));
        self.ec.append_option(
            cmcd.and_then(|c| c.error_codes.as_ref())
                .map(|codes| codes.join(",")),
        );
        self.msd.append_option(c(|c| c.media_start_delay_ms));
        self.bsa.append_option(c(|c| c.buffer_starvations));
        self.bsd.append_option(c(|c| c.buffer_starvation_ms));
        self.rows += 1;
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether nothing was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The Arrow bytes the rows appended so far take, about: their text plus
    /// each row's fixed-width values and offsets.
    pub fn size_estimate(&self) -> usize {
        const FIXED_ROW_BYTES: usize = 17 * 4 + 3 * 8 + 21 * 8 + 8;
        self.text_bytes + self.rows * FIXED_ROW_BYTES
    }

    /// The rows appended so far, as one batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        self.rows = 0;
        self.text_bytes = 0;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.stream_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.event.finish()),
            Arc::new(self.session_id.finish()),
            Arc::new(self.rendition.finish()),
            Arc::new(self.cdn.finish()),
            Arc::new(self.object.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.bytes_sent.finish()),
            Arc::new(self.complete.finish()),
            Arc::new(self.ttfb_us.finish()),
            Arc::new(self.ttlb_us.finish()),
            Arc::new(self.client_cohort.finish()),
            Arc::new(self.br.finish()),
            Arc::new(self.d.finish()),
            Arc::new(self.ot.finish()),
            Arc::new(self.tb.finish()),
            Arc::new(self.bl.finish()),
            Arc::new(self.dl.finish()),
            Arc::new(self.mtp.finish()),
            Arc::new(self.nor.finish()),
            Arc::new(self.nrr.finish()),
            Arc::new(self.su.finish()),
            Arc::new(self.cid.finish()),
            Arc::new(self.pr.finish()),
            Arc::new(self.sf.finish()),
            Arc::new(self.st.finish()),
            Arc::new(self.v.finish()),
            Arc::new(self.bs.finish()),
            Arc::new(self.rtp.finish()),
            Arc::new(self.ltc.finish()),
            Arc::new(self.pt.finish()),
            Arc::new(self.sn.finish()),
            Arc::new(self.sta.finish()),
            Arc::new(self.dfa.finish()),
            Arc::new(self.ec.finish()),
            Arc::new(self.msd.finish()),
            Arc::new(self.bsa.finish()),
            Arc::new(self.bsd.finish()),
        ];
        RecordBatch::try_new(request_schema(), columns)
    }
}

/// Text bytes of a request's CMCD.
fn cmcd_text_bytes(c: &Cmcd) -> usize {
    [
        &c.object_type,
        &c.next_object_request,
        &c.next_range_request,
        &c.content_id,
        &c.streaming_format,
        &c.session_id,
        &c.stream_type,
        &c.player_state,
        &c.cdn,
    ]
    .iter()
    .map(|v| v.as_ref().map_or(0, String::len))
    .sum::<usize>()
        + c.error_codes
            .as_ref()
            .map_or(0, |codes| codes.iter().map(|e| e.len() + 1).sum())
}

/// The requests of a batch in [`request_schema`]: the reverse of
/// [`RequestColumns::push`], for tools and tests that read records back. A
/// request whose CMCD columns are all null reads with `cmcd: None`.
pub fn requests_of(batch: &RecordBatch) -> Result<Vec<PlaybackRequest>, ArrowError> {
    let missing =
        |name: &str| ArrowError::SchemaError(format!("column `{name}` is missing or mistyped"));
    let text = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|a| a.as_string_opt::<i32>())
            .ok_or_else(|| missing(name))
    };
    let uint64 = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|a| a.as_primitive_opt::<UInt64Type>())
            .ok_or_else(|| missing(name))
    };
    let flag = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|a| a.as_boolean_opt())
            .ok_or_else(|| missing(name))
    };
    let (ids, streams, kinds) = (
        text(col::EVENT_ID)?,
        text(col::STREAM_ID)?,
        text(col::EVENT)?,
    );
    let ts = batch
        .column_by_name(col::TS)
        .and_then(|a| a.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| missing(col::TS))?;
    let status = batch
        .column_by_name("status")
        .and_then(|a| a.as_primitive_opt::<UInt32Type>())
        .ok_or_else(|| missing("status"))?;
    let pr = batch
        .column_by_name("cmcd_pr")
        .and_then(|a| a.as_primitive_opt::<Float64Type>())
        .ok_or_else(|| missing("cmcd_pr"))?;
    let [
        session,
        rendition,
        cdn,
        object,
        cohort,
        ot,
        nor,
        nrr,
        cid,
        sf,
        st,
        sta,
        ec,
    ] = [
        "session_id",
        "rendition",
        "cdn",
        "object",
        "client_cohort",
        "cmcd_ot",
        "cmcd_nor",
        "cmcd_nrr",
        "cmcd_cid",
        "cmcd_sf",
        "cmcd_st",
        "cmcd_sta",
        "cmcd_ec",
    ]
    .map(text);
    let [
        bytes,
        ttfb,
        ttlb,
        br,
        d,
        tb,
        bl,
        dl,
        mtp,
        v,
        rtp,
        ltc,
        pt,
        sn,
        dfa,
        msd,
        bsa,
        bsd,
    ] = [
        "bytes_sent",
        "ttfb_us",
        "ttlb_us",
        "cmcd_br",
        "cmcd_d",
        "cmcd_tb",
        "cmcd_bl",
        "cmcd_dl",
        "cmcd_mtp",
        "cmcd_v",
        "cmcd_rtp",
        "cmcd_ltc",
        "cmcd_pt",
        "cmcd_sn",
        "cmcd_dfa",
        "cmcd_msd",
        "cmcd_bsa",
        "cmcd_bsd",
    ]
    .map(uint64);
    let [complete, su, bs] = ["complete", "cmcd_su", "cmcd_bs"].map(flag);
    let (session, rendition, cdn, object, cohort) = (session?, rendition?, cdn?, object?, cohort?);
    let (ot, nor, nrr, cid, sf, st, sta, ec) = (ot?, nor?, nrr?, cid?, sf?, st?, sta?, ec?);
    let (bytes, ttfb, ttlb, br, d, tb, bl, dl, mtp) =
        (bytes?, ttfb?, ttlb?, br?, d?, tb?, bl?, dl?, mtp?);
    let (v, rtp, ltc, pt, sn, dfa, msd, bsa, bsd) =
        (v?, rtp?, ltc?, pt?, sn?, dfa?, msd?, bsa?, bsd?);
    let (complete, su, bs) = (complete?, su?, bs?);
    let mut out = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let s = |a: &StringArray| a.is_valid(i).then(|| a.value(i).to_owned());
        let n = |a: &UInt64Array| a.is_valid(i).then(|| a.value(i));
        let b = |a: &BooleanArray| a.is_valid(i).then(|| a.value(i));
        let object_kind = serde_json::from_value(serde_json::Value::String(
            kinds.value(i).to_owned(),
        ))
        .map_err(|_| {
            ArrowError::InvalidArgumentError(format!("unknown object kind `{}`", kinds.value(i)))
        })?;
        let cmcd = Cmcd {
            encoded_bitrate_kbps: n(br),
            object_duration_ms: n(d),
            object_type: s(ot),
            top_bitrate_kbps: n(tb),
            buffer_length_ms: n(bl),
            deadline_ms: n(dl),
            measured_throughput_kbps: n(mtp),
            next_object_request: s(nor),
            next_range_request: s(nrr),
            startup: b(su),
            content_id: s(cid),
            playback_rate: pr.is_valid(i).then(|| pr.value(i)),
            streaming_format: s(sf),
            session_id: s(session),
            stream_type: s(st),
            version: n(v),
            buffer_starvation: b(bs),
            requested_max_throughput_kbps: n(rtp),
            live_latency_ms: n(ltc),
            playhead_time_ms: n(pt),
            sequence_number: n(sn),
            player_state: s(sta),
            dropped_frames: n(dfa),
            error_codes: s(ec).map(|codes| codes.split(',').map(str::to_owned).collect()),
            media_start_delay_ms: n(msd),
            buffer_starvations: n(bsa),
            buffer_starvation_ms: n(bsd),
            cdn: s(cdn),
        };
        out.push(PlaybackRequest {
            request_id: ids.value(i).to_owned(),
            received_ms: ts.value(i),
            stream_id: streams.value(i).to_owned(),
            rendition: s(rendition),
            object: object.value(i).to_owned(),
            object_kind,
            status: u16::try_from(status.value(i)).unwrap_or(u16::MAX),
            bytes_sent: bytes.value(i),
            complete: complete.value(i),
            ttfb_us: n(ttfb),
            ttlb_us: n(ttlb),
            client_cohort: cohort.value(i).to_owned(),
            cmcd: (cmcd != Cmcd::default()).then_some(cmcd),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playback::PlaybackBatch;

    #[test]
    fn a_request_becomes_a_row_that_reads_like_an_event() {
        let batch: PlaybackBatch = serde_json::from_str(
            r#"{"schema_version":1,"requests":[{"request_id":"6f1c8a52-2f43-4a55-9a33-0d2f0c1a9b10",
            "received_ms":1700000000000,"stream_id":"s1","rendition":"720p","object":"seg4.m4s",
            "object_kind":"segment","status":200,"bytes_sent":48232,"complete":true,"ttfb_us":180,
            "ttlb_us":410,"client_cohort":"203.0.113.0/24","cmcd":{"encoded_bitrate_kbps":986,
            "startup":true,"session_id":"sess-123","error_codes":["E1","E2"]}}]}"#,
        )
        .unwrap();
        let mut columns = RequestColumns::default();
        columns.push(&batch.requests[0]);
        let rows = columns.finish().unwrap();
        let col = |name: &str| rows.column_by_name(name).unwrap().clone();
        assert_eq!(
            col("ts").as_primitive::<Int64Type>().value(0),
            1_700_000_000_000
        );
        assert_eq!(col("event_type").as_string::<i32>().value(0), "request");
        assert_eq!(col("event").as_string::<i32>().value(0), "segment");
        assert_eq!(col("session_id").as_string::<i32>().value(0), "sess-123");
        assert_eq!(col("cmcd_br").as_primitive::<UInt64Type>().value(0), 986);
        assert!(col("cmcd_su").as_boolean().value(0));
        assert_eq!(col("cmcd_ec").as_string::<i32>().value(0), "E1,E2");
        assert!(col("cmcd_bl").is_null(0));
        assert_eq!(requests_of(&rows).unwrap(), batch.requests);
    }
}
