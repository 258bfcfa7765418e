//! Writers over the one result model: the terminal summary, the JSON report, JUnit XML, and the
//! comparison with a baseline. The executor never prints; these do.

mod baseline;
mod json;
mod junit;
mod terminal;

pub use baseline::{Baseline, BaselineClass, BaselineError, compare};
pub use json::to_json;
pub use junit::to_junit;
pub use terminal::summary;
