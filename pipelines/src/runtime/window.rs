//! Event-time window kinds, declared in Arroyo's SQL dialect.
//!
//! Every window kind is computed from *panes*: fixed slices of event time
//! whose width divides every window's width and slide. A batch of events
//! updates the partial aggregates of its panes; a window is the merge of the
//! panes it spans, so a 1 min window sliding by 10 s reads six pane states
//! and never the raw events. Session windows ([`SessionWindow`]) have no
//! fixed bounds; `super::session` computes them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A window kind.
///
/// ```
/// use livepulse_pipelines::runtime::window::WindowSpec;
///
/// let hop: WindowSpec = "hop(interval '10 seconds', interval '1 minute')".parse().unwrap();
/// assert_eq!(hop, WindowSpec::Hop { slide_ms: 10_000, width_ms: 60_000 });
/// assert_eq!(hop.windows_containing(65_000), vec![10_000, 20_000, 30_000, 40_000, 50_000, 60_000]);
/// assert_eq!("tumble(interval '10 second')".parse::<WindowSpec>().unwrap().to_string(),
///            "tumble(interval '10 seconds')");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WindowSpec {
    /// `tumble(width)`: `[k * width, (k + 1) * width)`.
    Tumble {
        /// Width, ms.
        width_ms: i64,
    },
    /// `hop(slide, width)`: windows of `width` starting every `slide`.
    Hop {
        /// Distance between window starts, ms.
        slide_ms: i64,
        /// Width, ms.
        width_ms: i64,
    },
}

impl WindowSpec {
    /// `tumble` of `secs` seconds.
    pub const fn tumble_secs(secs: i64) -> Self {
        Self::Tumble {
            width_ms: secs * 1_000,
        }
    }

    /// Width, ms.
    pub const fn width_ms(self) -> i64 {
        match self {
            Self::Tumble { width_ms } | Self::Hop { width_ms, .. } => width_ms,
        }
    }

    /// Distance between window starts, ms.
    pub const fn slide_ms(self) -> i64 {
        match self {
            Self::Tumble { width_ms } => width_ms,
            Self::Hop { slide_ms, .. } => slide_ms,
        }
    }

    /// Starts of the windows containing event time `ts`, ascending.
    pub fn windows_containing(self, ts: i64) -> Vec<i64> {
        let (slide, width) = (self.slide_ms(), self.width_ms());
        let last = self.last_start(ts);
        let mut starts: Vec<i64> = (0..width / slide).map(|k| last - k * slide).collect();
        starts.reverse();
        starts
    }

    /// End of the earliest-closing window containing `ts`.
    pub fn first_end(self, ts: i64) -> i64 {
        self.last_start(ts) + self.slide_ms()
    }

    /// End of the latest-closing window containing `ts`.
    pub fn last_end(self, ts: i64) -> i64 {
        self.last_start(ts) + self.width_ms()
    }

    fn last_start(self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.slide_ms())
    }

    fn validate(self) -> Result<Self, WindowSpecError> {
        let (slide, width) = (self.slide_ms(), self.width_ms());
        if slide <= 0 || width <= 0 {
            return Err(WindowSpecError::NotPositive(self.to_string()));
        }
        if width % slide != 0 {
            return Err(WindowSpecError::Ragged(self.to_string()));
        }
        Ok(self)
    }
}

/// The pane width for a set of window kinds: the greatest common divisor of
/// their widths and slides.
pub fn pane_ms(windows: &[WindowSpec]) -> i64 {
    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    windows
        .iter()
        .flat_map(|w| [w.width_ms(), w.slide_ms()])
        .fold(0, gcd)
}

/// A window declaration that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WindowSpecError {
    /// Not `tumble(...)`, `hop(..., ...)` or `session(...)` with interval
    /// literals.
    #[error(
        "cannot read window `{0}`: expected tumble(interval 'N unit'), hop(interval 'N unit', interval 'N unit') or session(interval 'N unit')"
    )]
    Syntax(String),
    /// A zero or negative interval.
    #[error("window `{0}` needs positive intervals")]
    NotPositive(String),
    /// A hop whose width is not a whole number of slides.
    #[error("window `{0}`: the width must be a whole number of slides")]
    Ragged(String),
}

impl FromStr for WindowSpec {
    type Err = WindowSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || WindowSpecError::Syntax(s.to_owned());
        let (name, intervals) = parse_call(s).ok_or_else(syntax)?;
        match (name.as_str(), intervals.as_slice()) {
            ("tumble", &[width_ms]) => Self::Tumble { width_ms }.validate(),
            ("hop", &[slide_ms, width_ms]) => Self::Hop { slide_ms, width_ms }.validate(),
            _ => Err(syntax()),
        }
    }
}

/// A session window, `session(gap)`: per key, a run of events with no
/// silence of `gap` or longer between consecutive ones.
///
/// ```
/// use livepulse_pipelines::runtime::window::SessionWindow;
///
/// let session: SessionWindow = "session(interval '30 seconds')".parse().unwrap();
/// assert_eq!(session, SessionWindow { gap_ms: 30_000 });
/// assert_eq!(session.to_string(), "session(interval '30 seconds')");
/// assert!("tumble(interval '30 seconds')".parse::<SessionWindow>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionWindow {
    /// The silence that ends a session, ms.
    pub gap_ms: i64,
}

impl FromStr for SessionWindow {
    type Err = WindowSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match parse_call(s) {
            Some((name, intervals)) if name == "session" && intervals.len() == 1 => {
                if intervals[0] <= 0 {
                    return Err(WindowSpecError::NotPositive(s.trim().to_owned()));
                }
                Ok(Self {
                    gap_ms: intervals[0],
                })
            }
            _ => Err(WindowSpecError::Syntax(s.to_owned())),
        }
    }
}

impl fmt::Display for SessionWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session({})", interval(self.gap_ms))
    }
}

/// `name(interval '...', ...)` as the lower-case name and the intervals in ms.
fn parse_call(s: &str) -> Option<(String, Vec<i64>)> {
    let (name, args) = s.trim().split_once('(')?;
    let args = args.trim().strip_suffix(')')?;
    let intervals = args
        .split(',')
        .map(parse_interval)
        .collect::<Option<Vec<_>>>()?;
    Some((name.trim().to_ascii_lowercase(), intervals))
}

/// `interval '10 seconds'` (also `'1 minute'`, `'500 ms'`) in ms.
fn parse_interval(arg: &str) -> Option<i64> {
    let arg = arg.trim();
    let quoted = arg
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("interval"))
        .map(|_| arg[8..].trim())?;
    let inner = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
    let (n, unit) = inner.trim().split_once(char::is_whitespace)?;
    let n: i64 = n.parse().ok()?;
    let per = match unit.trim().to_ascii_lowercase().trim_end_matches('s') {
        "m" | "millisecond" => 1,
        "second" | "sec" => 1_000,
        "minute" | "min" => 60_000,
        "hour" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(per)
}

impl fmt::Display for WindowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tumble { width_ms } => write!(f, "tumble({})", interval(*width_ms)),
            Self::Hop { slide_ms, width_ms } => {
                write!(f, "hop({}, {})", interval(*slide_ms), interval(*width_ms))
            }
        }
    }
}

/// An interval literal for `ms`, in the largest unit that divides it.
fn interval(ms: i64) -> String {
    let (n, unit) = if ms != 0 && ms % 60_000 == 0 {
        (ms / 60_000, "minute")
    } else if ms % 1_000 == 0 {
        (ms / 1_000, "second")
    } else {
        return format!("interval '{ms} ms'");
    };
    let plural = if n == 1 { "" } else { "s" };
    format!("interval '{n} {unit}{plural}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_arroyo_window_declarations() {
        let parse = |s: &str| s.parse::<WindowSpec>();
        assert_eq!(
            parse("TUMBLE(INTERVAL '1 minute')"),
            Ok(WindowSpec::Tumble { width_ms: 60_000 })
        );
        assert_eq!(
            parse("hop(interval '500 ms', interval '2 seconds')"),
            Ok(WindowSpec::Hop {
                slide_ms: 500,
                width_ms: 2_000
            })
        );
        assert_eq!(
            parse("hop(interval '7 seconds', interval '1 minute')"),
            Err(WindowSpecError::Ragged(
                "hop(interval '7 seconds', interval '1 minute')".into()
            ))
        );
        assert_eq!(
            parse("tumble(interval '0 seconds')"),
            Err(WindowSpecError::NotPositive(
                "tumble(interval '0 seconds')".into()
            ))
        );
        assert!(matches!(
            parse("session(interval '30 seconds')"),
            Err(WindowSpecError::Syntax(_))
        ));
        assert_eq!(
            "SESSION(interval '0 seconds')".parse::<SessionWindow>(),
            Err(WindowSpecError::NotPositive(
                "SESSION(interval '0 seconds')".into()
            ))
        );
        assert!(matches!(
            parse("tumble(10)"),
            Err(WindowSpecError::Syntax(_))
        ));
    }

    #[test]
    fn panes_divide_every_window() {
        let windows = [
            WindowSpec::tumble_secs(10),
            WindowSpec::Hop {
                slide_ms: 15_000,
                width_ms: 60_000,
            },
        ];
        assert_eq!(pane_ms(&windows), 5_000);
        assert_eq!(
            WindowSpec::tumble_secs(10).windows_containing(-1),
            vec![-10_000]
        );
        let hop = windows[1];
        assert_eq!(
            hop.windows_containing(20_000),
            vec![-30_000, -15_000, 0, 15_000]
        );
        assert_eq!(
            (hop.first_end(20_000), hop.last_end(20_000)),
            (30_000, 75_000)
        );
    }
}
