//! Service-level objectives of a load run: `--slo success=99.5%`, `--slo p99=10ms`,
//! `--slo errors=0.5%`. Each is judged against the [`LoadReport`]; a missed one makes the run
//! exit 1.
//!
//! - `success=P%`: at least P % of the run deliveries expected (each message on each of its
//!   user's connections) reached a valid terminal sequence: completed within the grace period,
//!   refused by nothing in the run's state machine, ended by `agent_completed`.
//! - `errors=P%`: at most P % of the run deliveries expected ended in `agent_error` or were
//!   answered with an `error` frame.
//! - `pNN=Tms` (`p50`, `p90`, `p99`, `p999`, `max`): the routing latency, `user_message` →
//!   `agent_started` on the sending connection (the server's share, from the actual send), is
//!   at most T at that percentile (`ms` or `s`; no sample is a miss).
//!
//! ```
//! use goldenpath::load::Slo;
//!
//! let slo: Slo = "p99=10ms".parse().unwrap();
//! assert_eq!(slo.to_string(), "p99 ≤ 10 ms");
//! assert!("success=101%".parse::<Slo>().is_err());
//! assert!("speed=fast".parse::<Slo>().is_err());
//! ```

use serde::Serialize;

use super::LoadReport;

/// What an objective measures.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Measure {
    /// Percent of expected run deliveries that succeeded: a floor.
    Success,
    /// Percent of expected run deliveries that errored: a ceiling.
    Errors,
    /// A percentile of the routing latency, in ms, by name (`p99`, `max`): a ceiling.
    Latency(&'static str),
}

/// One objective (see the [module documentation](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    measure: Measure,
    /// Percent, or milliseconds.
    bound: f64,
}

/// An `--slo` that cannot be read: what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--slo {given:?}: {problem} (write success=99.5%, errors=0.5% or p99=10ms)")]
pub struct SloError {
    /// What was given.
    pub given: String,
    /// What is wrong with it.
    pub problem: String,
}

impl std::str::FromStr for Slo {
    type Err = SloError;

    fn from_str(s: &str) -> Result<Slo, SloError> {
        let err = |problem: &str| SloError {
            given: s.to_owned(),
            problem: problem.to_owned(),
        };
        let (name, value) = s.split_once('=').ok_or_else(|| err("not NAME=VALUE"))?;
        let (name, value) = (name.trim(), value.trim());
        let number = |text: &str| -> Result<f64, SloError> {
            text.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| err("the value is not a non-negative number"))
        };
        let percent = || -> Result<f64, SloError> {
            let n = number(
                value
                    .strip_suffix('%')
                    .ok_or_else(|| err("a rate ends in %"))?,
            )?;
            if n > 100.0 {
                return Err(err("a rate is at most 100%"));
            }
            Ok(n)
        };
        let measure = match name {
            "success" => Measure::Success,
            "errors" => Measure::Errors,
            "p50" => Measure::Latency("p50"),
            "p90" => Measure::Latency("p90"),
            "p99" => Measure::Latency("p99"),
            "p999" => Measure::Latency("p999"),
            "max" => Measure::Latency("max"),
            _ => {
                return Err(err(
                    "unknown objective: success, errors, p50, p90, p99, p999, max",
                ));
            }
        };
        let bound = match measure {
            Measure::Success | Measure::Errors => percent()?,
            Measure::Latency(_) => {
                if let Some(ms) = value.strip_suffix("ms") {
                    number(ms)?
                } else if let Some(s) = value.strip_suffix('s') {
                    number(s)? * 1000.0
                } else {
                    return Err(err("a latency ends in ms or s"));
                }
            }
        };
        Ok(Slo { measure, bound })
    }
}

impl std::fmt::Display for Slo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.measure {
            Measure::Success => write!(f, "success ≥ {}%", self.bound),
            Measure::Errors => write!(f, "errors ≤ {}%", self.bound),
            Measure::Latency(p) => write!(f, "{p} ≤ {} ms", self.bound),
        }
    }
}

/// An objective judged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloResult {
    /// The objective, e.g. `p99 ≤ 10 ms`.
    pub objective: String,
    /// What was measured (percent or ms); `None` when nothing could be (no sample).
    pub measured: Option<f64>,
    /// The unit of `measured`: `%` or `ms`.
    pub unit: &'static str,
    /// Whether it was met.
    pub met: bool,
}

impl Slo {
    /// Judge this objective against `report`.
    pub fn judge(&self, report: &LoadReport) -> SloResult {
        let (measured, unit) = match self.measure {
            Measure::Success => (report.success_percent(), "%"),
            Measure::Errors => (report.error_percent(), "%"),
            Measure::Latency(p) => {
                let l = &report.first_event_from_send_ms;
                let v = match p {
                    "p50" => l.p50,
                    "p90" => l.p90,
                    "p99" => l.p99,
                    "p999" => l.p999,
                    _ => l.max,
                };
                ((l.count > 0).then_some(v), "ms")
            }
        };
        let met = measured.is_some_and(|m| match self.measure {
            Measure::Success => m >= self.bound,
            Measure::Errors | Measure::Latency(_) => m <= self.bound,
        });
        SloResult {
            objective: self.to_string(),
            measured,
            unit,
            met,
        }
    }
}
