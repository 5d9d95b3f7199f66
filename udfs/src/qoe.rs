//! Per-view quality-of-experience scores on a 0-100 scale.
//!
//! The first four follow one vendor's published per-view scores (startup,
//! smoothness, video quality, playback success); [`playback_score`] is a
//! second vendor's startup curve. Per-view scores are meant to be averaged over
//! views. Inputs outside their domain (negative durations, counts or ratios)
//! are clamped to 0 so a bad client clock cannot push a score above 100; a NaN
//! input gives NaN.

/// Startup score: `100 * 8 / (8 + startup_seconds)`.
///
/// `startup_ms` is the video startup time (play instruction to the first
/// moving frame) in milliseconds. 0 ms scores 100, 8 s scores 50, and the score
/// tends to 0 as startup grows. Views that exited before start get no startup
/// score: do not call this for them.
///
/// ```
/// use livepulse_udfs::startup_score;
///
/// assert_eq!(startup_score(2_000.0), 80.0);
/// assert_eq!(startup_score(8_000.0), 50.0);
/// ```
#[must_use]
pub fn startup_score(startup_ms: f64) -> f64 {
    let seconds = non_negative(startup_ms) / 1000.0;
    100.0 * 8.0 / (8.0 + seconds)
}

/// Smoothness score: the mean of `100 / sqrt(1 + (rebuffer_count / 2)^2)` and
/// `100 * exp(-10 * rebuffer_ratio)`.
///
/// `rebuffer_count` is the number of stalls in the view and `rebuffer_ratio`
/// total stall time / total watch time (startup excluded), as a fraction
/// (0.01 = 1 %). No stall scores 100; two stalls alone cost about 15 points,
/// and 10 % of the time stalled alone about 32.
///
/// ```
/// use livepulse_udfs::smoothness_score;
///
/// assert_eq!(smoothness_score(0, 0.0), 100.0);
/// // (100 / sqrt(2) + 100) / 2
/// assert!((smoothness_score(2, 0.0) - 85.355_339_059_327_38).abs() < 1e-9);
/// ```
#[must_use]
pub fn smoothness_score(rebuffer_count: i64, rebuffer_ratio: f64) -> f64 {
    let half_count = rebuffer_count.max(0) as f64 / 2.0;
    // hypot(1, x) = sqrt(1 + x^2), without overflow for absurd counts.
    let frequency = 100.0 / 1.0_f64.hypot(half_count);
    let ratio = 100.0 * (-10.0 * non_negative(rebuffer_ratio)).exp();
    (frequency + ratio) / 2.0
}

/// Video quality score: `100 * exp(-0.33 * (0.15 * U_max + 0.85 * U_avg))`.
///
/// `U` is how much the player upscaled the rendition to fit its display, as
/// a fraction. This function takes percentages, as the parameter names say,
/// and divides them by 100 (50 % upscaling means `U = 0.5`), which reproduces
/// the vendor's published example: 50 % upscaling throughout scores 85.
/// No upscaling scores 100. Downscaling is not penalised (negative values
/// count as 0).
///
/// ```
/// use livepulse_udfs::quality_score;
///
/// assert_eq!(quality_score(0.0, 0.0), 100.0);
/// assert_eq!(quality_score(50.0, 50.0).round(), 85.0);
/// ```
#[must_use]
pub fn quality_score(upscale_max_pct: f64, upscale_avg_pct: f64) -> f64 {
    let u_max = non_negative(upscale_max_pct) / 100.0;
    let u_avg = non_negative(upscale_avg_pct) / 100.0;
    100.0 * (-0.33 * (0.15 * u_max + 0.85 * u_avg)).exp()
}

/// Playback success score: 100 for a view that played, 50 for one that
/// exited before the video started, 0 for a failure.
///
/// `played` says whether the view reached the first moving frame, `failed`
/// whether it ended in a fatal error (before start, a video start failure;
/// after it, a playback failure). A failure decides the score whatever
/// `played` says:
///
/// | played | failed | score | meaning |
/// |---|---|---|---|
/// | true  | false | 100 | played without a fatal error |
/// | false | false | 50  | exited before video start (EBVS) |
/// | false | true  | 0   | video start failure |
/// | true  | true  | 0   | playback failure after start |
///
/// ```
/// use livepulse_udfs::success_score;
///
/// assert_eq!(success_score(true, false), 100.0);
/// assert_eq!(success_score(false, false), 50.0);
/// assert_eq!(success_score(true, true), 0.0);
/// ```
#[must_use]
pub fn success_score(played: bool, failed: bool) -> f64 {
    match (played, failed) {
        (_, true) => 0.0,
        (true, false) => 100.0,
        (false, false) => 50.0,
    }
}

/// Startup below this many milliseconds scores a full 100 in [`playback_score`].
const PLAYBACK_BEST_MS: f64 = 300.0;
/// Startup at or above this many milliseconds scores 0 in [`playback_score`].
const PLAYBACK_WORST_MS: f64 = 20_000.0;

/// The second vendor's startup score:
/// `100 * (1 - (VST_ms - 300) / (20000 - 300))^2`, 100 at or under 300 ms and
/// 0 at or over 20 s.
///
/// `startup_ms` is the video startup time (VST) in milliseconds. The curve is
/// a parabola falling from 100 at 300 ms to 0 at 20 s, so the first seconds
/// cost most: 2.27 s already scores 81, 10.15 s scores 25.
///
/// ```
/// use livepulse_udfs::playback_score;
///
/// assert_eq!(playback_score(250.0), 100.0);
/// assert_eq!(playback_score(10_150.0), 25.0);
/// assert_eq!(playback_score(30_000.0), 0.0);
/// ```
#[must_use]
pub fn playback_score(startup_ms: f64) -> f64 {
    if startup_ms <= PLAYBACK_BEST_MS {
        100.0
    } else if startup_ms >= PLAYBACK_WORST_MS {
        0.0
    } else {
        let remaining =
            1.0 - (startup_ms - PLAYBACK_BEST_MS) / (PLAYBACK_WORST_MS - PLAYBACK_BEST_MS);
        100.0 * remaining * remaining
    }
}

/// Negative values become 0; NaN stays NaN (unlike `f64::max`, which would
/// turn NaN into 0 and hide bad input behind a perfect score).
fn non_negative(value: f64) -> f64 {
    if value < 0.0 { 0.0 } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values below were worked out by hand or with an independent
    /// calculator; 1e-9 absorbs the last-bit differences of exp/sqrt.
    fn close(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-9,
            "expected {expected}, got {actual}"
        );
    }

    #[test]
    fn startup_score_follows_8_over_8_plus_seconds() {
        assert_eq!(startup_score(0.0), 100.0);
        assert_eq!(startup_score(2_000.0), 80.0);
        assert_eq!(startup_score(8_000.0), 50.0);
        assert_eq!(startup_score(24_000.0), 25.0);
        close(startup_score(1_500.0), 800.0 / 9.5); // 84.2105263...
        close(startup_score(3_000.0), 72.727_272_727_272_73);
    }

    #[test]
    fn startup_score_edges() {
        assert_eq!(
            startup_score(-500.0),
            100.0,
            "clock skew must not exceed 100"
        );
        assert_eq!(startup_score(f64::INFINITY), 0.0);
        assert!(startup_score(f64::NAN).is_nan());
    }

    #[test]
    fn smoothness_score_mixes_count_and_ratio() {
        assert_eq!(smoothness_score(0, 0.0), 100.0);
        // count 2: 100/sqrt(2) = 70.710678..., ratio 0: 100.
        close(smoothness_score(2, 0.0), 50.0 + 25.0 * 2.0_f64.sqrt());
        // ratio 0.1: 100 * e^-1 = 36.787944...
        close(smoothness_score(0, 0.1), 68.393_972_058_572_12);
        // count 1: 100/sqrt(1.25) = 89.442719...; ratio 0.02: 100 * e^-0.2 = 81.873075...
        close(smoothness_score(1, 0.02), 85.657_897_203_894_89);
        // count 4: 100/sqrt(5) = 44.721359...; ratio 0.05: 100 * e^-0.5 = 60.653066...
        close(smoothness_score(4, 0.05), 52.687_212_760_629_56);
    }

    #[test]
    fn smoothness_score_edges() {
        assert_eq!(smoothness_score(-3, -0.5), 100.0);
        // Each half tends to 0; neither overflows.
        close(smoothness_score(i64::MAX, 0.0), 50.0);
        assert_eq!(smoothness_score(0, f64::INFINITY), 50.0);
        assert!(smoothness_score(1, f64::NAN).is_nan());
    }

    #[test]
    fn quality_score_weights_avg_over_max() {
        assert_eq!(quality_score(0.0, 0.0), 100.0);
        // 50 % throughout: 100 * e^-0.165 (the vendor rounds it to 85).
        close(quality_score(50.0, 50.0), 84.789_370_408_791_58);
        // 100 % peak, 20 % average: 100 * e^(-0.33 * (0.15 + 0.17)) = 100 * e^-0.1056.
        close(quality_score(100.0, 20.0), 89.978_448_989_872_1);
        // The average weighs 0.85, the peak 0.15.
        assert!(quality_score(0.0, 40.0) < quality_score(40.0, 0.0));
    }

    #[test]
    fn quality_score_edges() {
        assert_eq!(quality_score(-20.0, -5.0), 100.0);
        assert_eq!(quality_score(f64::INFINITY, 0.0), 0.0);
        assert!(quality_score(f64::NAN, 0.0).is_nan());
    }

    #[test]
    fn success_score_truth_table() {
        assert_eq!(success_score(true, false), 100.0);
        assert_eq!(success_score(false, false), 50.0);
        assert_eq!(success_score(false, true), 0.0);
        assert_eq!(success_score(true, true), 0.0);
    }

    #[test]
    fn playback_score_parabola() {
        assert_eq!(playback_score(300.0), 100.0);
        // (10150 - 300) / 19700 = 0.5 exactly: 100 * 0.25.
        assert_eq!(playback_score(10_150.0), 25.0);
        // (2270 - 300) / 19700 = 0.1: 100 * 0.81.
        close(playback_score(2_270.0), 81.0);
        // 1 - 700/19700 = 0.964467...; squared * 100.
        close(playback_score(1_000.0), 93.019_660_388_054_32);
        assert!(playback_score(19_999.0) > 0.0);
        assert!(playback_score(19_999.0) < 1e-3);
    }

    #[test]
    fn playback_score_clamps() {
        assert_eq!(playback_score(0.0), 100.0);
        assert_eq!(playback_score(-1.0), 100.0);
        assert_eq!(playback_score(299.9), 100.0);
        assert_eq!(playback_score(20_000.0), 0.0);
        assert_eq!(playback_score(60_000.0), 0.0);
        assert_eq!(playback_score(f64::INFINITY), 0.0);
        assert!(playback_score(f64::NAN).is_nan());
    }
}
