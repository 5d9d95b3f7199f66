//! Playback requests of an input batch to rows of the raw
//! `playback_requests` table.

use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use livepulse_contract::arrow::requests::REQUEST;
use livepulse_sql::PlaybackRequestRow;

use crate::jobs::epoch_seconds;
use crate::runtime::columns::Columns;

/// One [`PlaybackRequestRow`] per request in `batch` (the QoE job's input
/// schema); its player events are left out.
pub fn request_rows(batch: &RecordBatch) -> Result<Vec<PlaybackRequestRow>, ArrowError> {
    let c = Columns::new(batch);
    let kinds = c.string("event_type")?;
    if !kinds.iter().any(|k| k == REQUEST) {
        return Ok(Vec::new());
    }
    let ts = c.i64("ts")?;
    let [request_id, stream_id, event] = ["event_id", "stream_id", "event"].map(|n| c.string(n));
    let (request_id, stream_id, event) = (request_id?, stream_id?, event?);
    let [
        session_id,
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
    .map(|n| c.opt_string(n));
    let (session_id, rendition, cdn, object, cohort) =
        (session_id?, rendition?, cdn?, object?, cohort?);
    let (ot, nor, nrr, cid, sf, st, sta, ec) = (ot?, nor?, nrr?, cid?, sf?, st?, sta?, ec?);
    let [
        bytes_sent,
        ttfb_us,
        ttlb_us,
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
    .map(|n| c.opt_u64(n));
    let (bytes_sent, ttfb_us, ttlb_us, br, d, tb, bl, dl, mtp) = (
        bytes_sent?,
        ttfb_us?,
        ttlb_us?,
        br?,
        d?,
        tb?,
        bl?,
        dl?,
        mtp?,
    );
    let (v, rtp, ltc, pt, sn, dfa, msd, bsa, bsd) =
        (v?, rtp?, ltc?, pt?, sn?, dfa?, msd?, bsa?, bsd?);
    let status = c.opt_u32("status")?;
    let [complete, su, bs] = ["complete", "cmcd_su", "cmcd_bs"].map(|n| c.opt_bool(n));
    let (complete, su, bs) = (complete?, su?, bs?);
    let pr = c.opt_f64("cmcd_pr")?;
    let rows = (0..batch.num_rows())
        .filter(|&i| kinds[i] == REQUEST)
        .map(|i| PlaybackRequestRow {
            request_id: request_id[i].clone(),
            ts: epoch_seconds(ts[i]),
            ts_ms: ts[i],
            stream_id: stream_id[i].clone(),
            event_type: kinds[i].clone(),
            object_kind: event[i].clone(),
            session_id: session_id[i].clone(),
            rendition: rendition[i].clone(),
            cdn: cdn[i].clone(),
            object: object[i].clone().unwrap_or_default(),
            status: status[i].unwrap_or_default(),
            bytes_sent: bytes_sent[i].unwrap_or_default(),
            complete: complete[i].unwrap_or_default(),
            ttfb_us: ttfb_us[i],
            ttlb_us: ttlb_us[i],
            client_cohort: cohort[i].clone().unwrap_or_default(),
            cmcd_br: br[i],
            cmcd_d: d[i],
            cmcd_ot: ot[i].clone(),
            cmcd_tb: tb[i],
            cmcd_bl: bl[i],
            cmcd_dl: dl[i],
            cmcd_mtp: mtp[i],
            cmcd_nor: nor[i].clone(),
            cmcd_nrr: nrr[i].clone(),
            cmcd_su: su[i],
            cmcd_cid: cid[i].clone(),
            cmcd_pr: pr[i],
            cmcd_sf: sf[i].clone(),
            cmcd_st: st[i].clone(),
            cmcd_v: v[i],
            cmcd_bs: bs[i],
            cmcd_rtp: rtp[i],
            cmcd_ltc: ltc[i],
            cmcd_pt: pt[i],
            cmcd_sn: sn[i],
            cmcd_sta: sta[i].clone(),
            cmcd_dfa: dfa[i],
            cmcd_ec: ec[i].clone(),
            cmcd_msd: msd[i],
            cmcd_bsa: bsa[i],
            cmcd_bsd: bsd[i],
        })
        .collect();
    Ok(rows)
}
