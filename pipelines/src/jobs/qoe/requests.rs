//! The raw `playback_requests` table: every de-duplicated playback request,
//! as the columns of [`PlaybackRequestRow`](livepulse_sql::PlaybackRequestRow).

use livepulse_contract::arrow::requests::REQUEST;
use livepulse_contract::tables;

use crate::sinks::row_binary::Kind::{Bool, DateTimeFromMs, Float64, Int64, Text, UInt32, UInt64};
use crate::sinks::row_binary::{RawColumn, RawTable};

/// How each column of `playback_requests` is read from the QoE job's input;
/// its player events are the engagement job's.
pub const PLAYBACK_REQUESTS: RawTable = RawTable {
    name: tables::PLAYBACK_REQUESTS,
    columns: &[
        RawColumn::new("request_id", Text).from("event_id"),
        RawColumn::new("ts", DateTimeFromMs),
        RawColumn::new("ts_ms", Int64).from("ts"),
        RawColumn::new("stream_id", Text),
        RawColumn::new("event_type", Text),
        RawColumn::new("object_kind", Text).from("event"),
        RawColumn::nullable("session_id", Text),
        RawColumn::nullable("rendition", Text),
        RawColumn::nullable("cdn", Text),
        RawColumn::new("object", Text),
        RawColumn::new("status", UInt32),
        RawColumn::new("bytes_sent", UInt64),
        RawColumn::new("complete", Bool),
        RawColumn::nullable("ttfb_us", UInt64),
        RawColumn::nullable("ttlb_us", UInt64),
        RawColumn::new("client_cohort", Text),
        RawColumn::nullable("cmcd_br", UInt64),
        RawColumn::nullable("cmcd_d", UInt64),
        RawColumn::nullable("cmcd_ot", Text),
        RawColumn::nullable("cmcd_tb", UInt64),
        RawColumn::nullable("cmcd_bl", UInt64),
        RawColumn::nullable("cmcd_dl", UInt64),
        RawColumn::nullable("cmcd_mtp", UInt64),
        RawColumn::nullable("cmcd_nor", Text),
        RawColumn::nullable("cmcd_nrr", Text),
        RawColumn::nullable("cmcd_su", Bool),
        RawColumn::nullable("cmcd_cid", Text),
        RawColumn::nullable("cmcd_pr", Float64),
        RawColumn::nullable("cmcd_sf", Text),
        RawColumn::nullable("cmcd_st", Text),
        RawColumn::nullable("cmcd_v", UInt64),
        RawColumn::nullable("cmcd_bs", Bool),
        RawColumn::nullable("cmcd_rtp", UInt64),
        RawColumn::nullable("cmcd_ltc", UInt64),
        RawColumn::nullable("cmcd_pt", UInt64),
        RawColumn::nullable("cmcd_sn", UInt64),
        RawColumn::nullable("cmcd_sta", Text),
        RawColumn::nullable("cmcd_dfa", UInt64),
        RawColumn::nullable("cmcd_ec", Text),
        RawColumn::nullable("cmcd_msd", UInt64),
        RawColumn::nullable("cmcd_bsa", UInt64),
        RawColumn::nullable("cmcd_bsd", UInt64),
    ],
    only: Some(("event_type", REQUEST)),
};

#[cfg(test)]
mod tests {
    use livepulse_sql::PlaybackRequestRow;

    use super::*;

    #[test]
    fn the_columns_are_those_of_playback_request_row() {
        let names: Vec<&str> = PLAYBACK_REQUESTS.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, <PlaybackRequestRow as clickhouse::Row>::COLUMN_NAMES);
    }
}
