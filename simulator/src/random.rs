//! Sampling helpers over the one seeded generator. Only the draws defined
//! here are used, so the event stream depends on the seed alone.

use rand::{Rng, RngExt};
use rand_chacha::ChaCha8Rng;

/// The simulator's generator.
pub(crate) type SimRng = ChaCha8Rng;

/// A version-4 UUID built from generator bytes, lower-case hyphenated.
pub(crate) fn uuid(rng: &mut SimRng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut buf).to_owned()
}

/// Uniform in `[0, 1)`.
pub(crate) fn unit(rng: &mut SimRng) -> f64 {
    rng.random::<f64>()
}

/// True with probability `p`.
pub(crate) fn chance(rng: &mut SimRng, p: f64) -> bool {
    unit(rng) < p
}

/// Uniform integer in `[lo, hi)`; `lo` when the range is empty.
pub(crate) fn between(rng: &mut SimRng, lo: i64, hi: i64) -> i64 {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..hi)
    }
}

/// Standard normal (Box-Muller).
fn normal(rng: &mut SimRng) -> f64 {
    // 1 - u is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - unit(rng);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Log-normal with the given median and sigma of the logarithm.
pub(crate) fn lognormal(rng: &mut SimRng, median: f64, sigma: f64) -> f64 {
    median * (sigma * normal(rng)).exp()
}

/// Exponential waiting time for events at `rate_per_ms`; `None` for a zero rate.
pub(crate) fn exponential(rng: &mut SimRng, rate_per_ms: f64) -> Option<i64> {
    if rate_per_ms <= 0.0 {
        return None;
    }
    let wait = -(1.0 - unit(rng)).ln() / rate_per_ms;
    // At least 1 ms so a chain of arrivals always moves forward.
    Some((wait.min(1e15) as i64).max(1))
}

/// Index drawn with the given weights (not all zero).
pub(crate) fn weighted<T>(rng: &mut SimRng, items: &[T], weight: impl Fn(&T) -> u32) -> usize {
    let total: u32 = items.iter().map(&weight).sum();
    let mut pick = rng.random_range(0..total);
    for (i, item) in items.iter().enumerate() {
        let w = weight(item);
        if pick < w {
            return i;
        }
        pick -= w;
    }
    items.len() - 1
}

/// Probability of at least one event in `span_ms` at `rate_per_ms`.
pub(crate) fn within(rate_per_ms: f64, span_ms: i64) -> f64 {
    1.0 - (-rate_per_ms * span_ms as f64).exp()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn uuids_are_version_4() {
        let mut rng = SimRng::seed_from_u64(3);
        let id = uuid::Uuid::parse_str(&uuid(&mut rng)).unwrap();
        assert_eq!(id.get_version_num(), 4);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn lognormal_median_is_the_median() {
        let mut rng = SimRng::seed_from_u64(5);
        let mut draws: Vec<f64> = (0..20_001)
            .map(|_| lognormal(&mut rng, 1_000.0, 0.8))
            .collect();
        draws.sort_by(f64::total_cmp);
        let median = draws[10_000];
        assert!((950.0..1_050.0).contains(&median), "{median}");
    }
}
