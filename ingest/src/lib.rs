//! Edge services of livepulse: what clients and encoders talk to.
//!
//! * [`collector`]: the telemetry collector, `POST /v1/events` into Kafka.
//! * [`origin`]: the HLS origin, HLS over HTTP `PUT` in, playback out, and
//!   the playback request log (with CMCD) into Kafka.

mod bearer;
mod broker_probe;
pub mod collector;
pub mod origin;
