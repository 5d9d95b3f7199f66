//! A seeded, deterministic synthetic audience for a live-streaming platform,
//! and a client that sends it to the collector.
//!
//! * [`Audience`]: streams go live, viewers arrive, pick a stream (a few are
//!   far more popular), start a session that plays, fails or is abandoned,
//!   heartbeat, stall, switch bitrate, chat, like, gift and follow. Events
//!   come out in send order with bounded disorder and duplicates, and every
//!   one passes [`Event::validate`](livepulse_contract::Event::validate).
//! * [`AudienceConfig`]: size, seed, delivery faults and [`Behaviour`] knobs.
//! * [`CollectorClient`] and [`drive`]: POST batches to `/v1/events`, in real
//!   time, until told to stop.
//! * [`cmcd`]: the origin's CMCD request log for the simulated views.
//!
//! ```
//! use livepulse_simulator::{Audience, AudienceConfig};
//!
//! let cfg = AudienceConfig::new(42, 3, 300, 1_700_000_000_000);
//! let events = Audience::run_for(cfg, 120_000).unwrap();
//! assert!(events.iter().all(|e| e.validate(1_700_000_120_000, &Default::default()).is_ok()));
//! ```

mod audience;
mod calendar;
pub mod catalogue;
pub mod client;
pub mod cmcd;
mod config;
mod drive;
mod outbox;
mod random;

pub use audience::{Audience, StreamInfo};
pub use client::{ClientError, CollectorClient};
pub use config::{AudienceConfig, Behaviour, ConfigError};
pub use drive::{DRIVE_INTERVAL, DriveTotals, RealtimeClock, drive};
