-- Player QoE fields (a switch's previous bitrate, live latency, upscaling)
-- and ingest health fields (segment duration, frame rate, keyframe
-- interval; the measured bitrate uses bitrate_kbps), appended in the order
-- of the contract's Arrow event schema. One column per statement: the
-- migrator skips a column that exists (18.16 lacks ADD COLUMN IF NOT EXISTS).
ALTER TABLE events ADD COLUMN previous_bitrate_kbps Nullable(UInt32);
ALTER TABLE events ADD COLUMN latency_ms Nullable(UInt32);
ALTER TABLE events ADD COLUMN upscale_pct Nullable(UInt32);
ALTER TABLE events ADD COLUMN segment_ms Nullable(UInt32);
ALTER TABLE events ADD COLUMN frame_rate Nullable(Float64);
ALTER TABLE events ADD COLUMN keyframe_interval_ms Nullable(UInt32);
