-- Every playback request the origin logged, one row each (the QoE job keeps
-- them), in the column order of the contract's Arrow request schema. The
-- request's receipt is kept twice: `ts` (seconds) drives the daily
-- partitions, `ts_ms` keeps the precision. `client_cohort` is the client's
-- network (IPv4 /24, IPv6 /48), never its address. A request logged twice
-- has the same sorting key, so it collapses on merge; read with FINAL.
CREATE TABLE IF NOT EXISTS playback_requests
(
    request_id String,
    ts DateTime,
    ts_ms Int64,
    stream_id String,
    event_type String,
    object_kind String,
    session_id Nullable(String),
    rendition Nullable(String),
    cdn Nullable(String),
    object String,
    status UInt32,
    bytes_sent UInt64,
    complete UInt8,
    ttfb_us Nullable(UInt64),
    ttlb_us Nullable(UInt64),
    client_cohort String,
    cmcd_br Nullable(UInt64),
    cmcd_d Nullable(UInt64),
    cmcd_ot Nullable(String),
    cmcd_tb Nullable(UInt64),
    cmcd_bl Nullable(UInt64),
    cmcd_dl Nullable(UInt64),
    cmcd_mtp Nullable(UInt64),
    cmcd_nor Nullable(String),
    cmcd_nrr Nullable(String),
    cmcd_su Nullable(UInt8),
    cmcd_cid Nullable(String),
    cmcd_pr Nullable(Float64),
    cmcd_sf Nullable(String),
    cmcd_st Nullable(String),
    cmcd_v Nullable(UInt64),
    cmcd_bs Nullable(UInt8),
    cmcd_rtp Nullable(UInt64),
    cmcd_ltc Nullable(UInt64),
    cmcd_pt Nullable(UInt64),
    cmcd_sn Nullable(UInt64),
    cmcd_sta Nullable(String),
    cmcd_dfa Nullable(UInt64),
    cmcd_ec Nullable(String),
    cmcd_msd Nullable(UInt64),
    cmcd_bsa Nullable(UInt64),
    cmcd_bsd Nullable(UInt64)
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(ts)
ORDER BY (stream_id, ts, request_id);
