//! Engagement ratios computed per room and window.

/// Interactions per viewer: `R = interactions / viewers`.
///
/// `interactions` is a count of chat messages, likes, gifts or follows in a
/// window and `viewers` the audience they are normalised by (for example the
/// concurrent viewers of that window). Returns `None` when `viewers <= 0`: an
/// empty room has no rate, and reporting 0 would read as "nobody engaged".
/// `interactions` is not checked; a negative count gives a negative rate.
///
/// ```
/// use livepulse_udfs::interaction_rate;
///
/// assert_eq!(interaction_rate(30, 120), Some(0.25));
/// assert_eq!(interaction_rate(5, 0), None);
/// ```
#[must_use]
pub fn interaction_rate(interactions: i64, viewers: i64) -> Option<f64> {
    // i64 -> f64 rounds above 2^53, far beyond any real audience or count.
    (viewers > 0).then(|| interactions as f64 / viewers as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn divides_interactions_by_viewers() {
        assert_eq!(interaction_rate(30, 120), Some(0.25));
        assert_eq!(interaction_rate(0, 10), Some(0.0));
        assert_eq!(interaction_rate(10, 1), Some(10.0));
        assert_eq!(interaction_rate(7, 3), Some(7.0 / 3.0));
        assert_eq!(interaction_rate(-4, 8), Some(-0.5));
    }

    #[test]
    fn no_rate_without_viewers() {
        assert_eq!(interaction_rate(5, 0), None);
        assert_eq!(interaction_rate(0, 0), None);
        assert_eq!(interaction_rate(5, -1), None);
        assert_eq!(interaction_rate(5, i64::MIN), None);
    }

    #[test]
    fn extreme_counts_stay_finite() {
        assert_eq!(interaction_rate(i64::MAX, i64::MAX), Some(1.0));
        assert_eq!(
            interaction_rate(i64::MIN, 1),
            Some(-9_223_372_036_854_775_808.0)
        );
    }
}
