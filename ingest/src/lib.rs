//! Edge services of livepulse: what clients and encoders talk to.
//!
//! * [`collector`]: the telemetry collector, `POST /v1/events` into Kafka.

pub mod collector;
