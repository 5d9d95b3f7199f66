//! Arroyo UDF plugin wrappers, one per `arroyo-*` cargo feature.
//!
//! `arroyo_udf_plugin::udf` exports a fixed `#[no_mangle] __run` symbol, so
//! one dylib can carry only one UDF: enable exactly one feature per build
//! (the `arroyo-plugins/build` script does so for each in turn). Each wrapper
//! has the plain function's name and signature, which Arroyo reads as the SQL
//! name and types, and calls the plain function. The one exception is
//! `success_score`, whose flags are integers (see there).
//!
//! The workspace forbids `unsafe_code` and uses edition 2024; the macro's bare
//! `#[no_mangle]` output compiles under both unchanged (rustc does not report
//! either for code expanded from another crate's proc macro), so this module
//! needs no `allow` (one could not override `forbid` anyway).

/// Fails the build, naming the pair, when two of the listed features are on:
/// both would export `__run` and the dylib could carry only one of them.
macro_rules! at_most_one_feature {
    () => {};
    ($first:literal $(, $rest:literal)*) => {
        $(
            #[cfg(all(feature = $first, feature = $rest))]
            compile_error!(concat!(
                "features `", $first, "` and `", $rest, "` are both enabled: an Arroyo ",
                "plugin carries exactly one UDF, build one dylib per feature ",
                "(udfs/arroyo-plugins/build)"
            ));
        )*
        at_most_one_feature!($($rest),*);
    };
}

at_most_one_feature!(
    "arroyo-interaction-rate",
    "arroyo-startup-score",
    "arroyo-smoothness-score",
    "arroyo-quality-score",
    "arroyo-success-score",
    "arroyo-playback-score",
    "arroyo-distinct-key"
);

#[cfg(feature = "arroyo-interaction-rate")]
#[arroyo_udf_plugin::udf]
fn interaction_rate(interactions: i64, viewers: i64) -> Option<f64> {
    crate::interaction_rate(interactions, viewers)
}

#[cfg(feature = "arroyo-startup-score")]
#[arroyo_udf_plugin::udf]
fn startup_score(startup_ms: f64) -> f64 {
    crate::startup_score(startup_ms)
}

#[cfg(feature = "arroyo-smoothness-score")]
#[arroyo_udf_plugin::udf]
fn smoothness_score(rebuffer_count: i64, rebuffer_ratio: f64) -> f64 {
    crate::smoothness_score(rebuffer_count, rebuffer_ratio)
}

#[cfg(feature = "arroyo-quality-score")]
#[arroyo_udf_plugin::udf]
fn quality_score(upscale_max_pct: f64, upscale_avg_pct: f64) -> f64 {
    crate::quality_score(upscale_max_pct, upscale_avg_pct)
}

/// The flags are `BIGINT`s (non-zero = true), not booleans: the 0.2 macro
/// reads every non-string argument as a primitive Arrow array, which a
/// boolean array is not, so `bool` arguments do not compile. Call it as
/// `success_score(CAST(played AS BIGINT), CAST(failed AS BIGINT))`.
#[cfg(feature = "arroyo-success-score")]
#[arroyo_udf_plugin::udf]
fn success_score(played: i64, failed: i64) -> f64 {
    crate::success_score(played != 0, failed != 0)
}

#[cfg(feature = "arroyo-playback-score")]
#[arroyo_udf_plugin::udf]
fn playback_score(startup_ms: f64) -> f64 {
    crate::playback_score(startup_ms)
}

#[cfg(feature = "arroyo-distinct-key")]
#[arroyo_udf_plugin::udf]
fn distinct_key(value: &str) -> i64 {
    crate::distinct_key(value)
}
