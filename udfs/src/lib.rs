//! Scalar functions the livepulse jobs need beyond SQL: an engagement ratio,
//! per-view quality-of-experience scores and integer keys for distinct counts.
//!
//! Each function exists three ways:
//! - as a plain Rust function (always compiled; only [`distinct_key`] needs a
//!   crate, for its hash);
//! - as a DataFusion [`ScalarUDF`](::datafusion::logical_expr::ScalarUDF) of
//!   the same name, via [`datafusion::register_all`] (feature `datafusion`, on
//!   by default);
//! - as an Arroyo UDF plugin, one dylib per function (features `arroyo-*`,
//!   built by `udfs/arroyo-plugins/build`; see the crate README).
//!
//! ```
//! use livepulse_udfs::{interaction_rate, startup_score};
//!
//! assert_eq!(interaction_rate(12, 48), Some(0.25));
//! assert_eq!(startup_score(2_000.0), 80.0);
//! ```

mod engagement;
mod keys;
mod qoe;

pub use engagement::interaction_rate;
pub use keys::distinct_key;
pub use qoe::{playback_score, quality_score, smoothness_score, startup_score, success_score};

#[cfg(feature = "datafusion")]
pub mod datafusion;

#[cfg(feature = "arroyo-plugin")]
mod arroyo;
