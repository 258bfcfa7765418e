//! The runner's named checks and the requirement each one's failure breaks.
//!
//! `features/checks.toml` names every check a runner makes beyond a scenario's own tags (a
//! user message that starts no run, a leak, a frame that is no JSON object...) and maps it to
//! its requirement, so that the runner's code carries a check's name and never a requirement
//! id. The requirements a run's state machine judges are `sequence.toml`'s
//! ([`crate::machine`]); those an `error` code answers for, the error-codes table's
//! ([`crate::ErrorCode`]). This module embeds the file — the only place that does — and reads
//! it once, on first use; the tests check that it names only requirements of the catalogue.
//!
//! # Examples
//!
//! ```
//! use goldenpath_spec::checks;
//!
//! let id = checks::requirement("wire.json-object").expect("a check of the runner");
//! assert_eq!(goldenpath_spec::catalogue::requirement(id).map(|r| r.family), Some("WIRE"));
//! assert!(checks::requirement("wire.no-such-check").is_none());
//! assert!(checks::checks().iter().any(|c| c.requirement == id));
//! ```

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// The text of `features/checks.toml`.
pub const CHECKS: &str = include_str!("../../features/checks.toml");

/// One named check: a row of `features/checks.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The check's name, `<what is checked>.<the rule>`: `wire.json-object`.
    pub name: String,
    /// The requirement its failure breaks: an id of the catalogue.
    pub requirement: &'static str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChecks {
    checks: BTreeMap<String, String>,
}

/// Every named check, by name.
pub fn checks() -> &'static [Check] {
    static CHECKS_TABLE: OnceLock<Vec<Check>> = OnceLock::new();
    CHECKS_TABLE.get_or_init(|| {
        // The file is embedded and tested: one this cannot read is a bug of this crate.
        let raw: RawChecks = toml::from_str(CHECKS)
            .unwrap_or_else(|e| panic!("features/checks.toml cannot be read: {e}"));
        raw.checks
            .into_iter()
            .map(|(name, id)| {
                let requirement = crate::catalogue::requirement(&id)
                    .or_else(|| crate::catalogue::load_requirement(&id))
                    .map(|r| r.id)
                    .unwrap_or_else(|| {
                        panic!("features/checks.toml: check {name:?} names {id:?}, no requirement of the catalogue")
                    });
                Check { name, requirement }
            })
            .collect()
    })
}

/// The requirement the check named `name` judges, if `features/checks.toml` names it.
pub fn requirement(name: &str) -> Option<&'static str> {
    checks()
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.requirement)
}

/// The names of the checks that judge `requirement`, in name order.
pub fn judging(requirement: &str) -> Vec<&'static str> {
    checks()
        .iter()
        .filter(|c| c.requirement == requirement)
        .map(|c| c.name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_check_names_a_requirement_of_the_catalogue() {
        let checks = super::checks();
        assert!(!checks.is_empty());
        for c in checks {
            assert!(
                c.name.contains('.') && !c.name.contains(' '),
                "{:?} is no `<what>.<rule>` name",
                c.name
            );
        }
    }
}
