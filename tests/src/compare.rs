//! Comparing rows the streaming jobs wrote with the recomputation's, where
//! floating-point figures may differ in their last bits (sums in another
//! order) or by the percentile interpolation's quantization.

use serde::Serialize;
use serde_json::Value;

/// Columns named like this are percentiles: DataFusion quantizes the
/// interpolation weight to 1e-6, so they may differ by a hundredth of a ms.
const PERCENTILE_PREFIX: &str = "startup_p";

/// The fields where `got` and `want` differ beyond float noise (relative
/// 1e-9, or 0.01 for percentiles); empty when they match.
///
/// ```
/// #[derive(serde::Serialize)]
/// struct Row { n: u64, ratio: f64 }
/// let diff = livepulse_e2e::compare::differences(&Row { n: 1, ratio: 0.1 + 0.2 }, &Row { n: 1, ratio: 0.3 });
/// assert!(diff.is_empty());
/// assert_eq!(livepulse_e2e::compare::differences(&Row { n: 2, ratio: 0.3 }, &Row { n: 1, ratio: 0.3 }).len(), 1);
/// ```
pub fn differences<T: Serialize>(got: &T, want: &T) -> Vec<String> {
    let (Ok(Value::Object(got)), Ok(Value::Object(want))) =
        (serde_json::to_value(got), serde_json::to_value(want))
    else {
        return vec!["rows are not objects".into()];
    };
    want.iter()
        .filter(|(name, w)| !same(name, got.get(*name).unwrap_or(&Value::Null), w))
        .map(|(name, w)| {
            format!(
                "{name}: got {}, want {w}",
                got.get(name).unwrap_or(&Value::Null)
            )
        })
        .collect()
}

fn same(name: &str, got: &Value, want: &Value) -> bool {
    match (got.as_f64(), want.as_f64()) {
        (Some(g), Some(w)) if got.is_f64() || want.is_f64() => {
            let tolerance = if name.starts_with(PERCENTILE_PREFIX) {
                0.01
            } else {
                1e-9 * w.abs().max(1.0)
            };
            (g - w).abs() <= tolerance
        }
        _ => got == want,
    }
}
