//! The requirement catalogue and the Gherkin features that check it.
//!
//! `features/README.md` lists every requirement of the spec, one row of a Markdown table each:
//! its id (`GP-<FAMILY>-NNN`), its level (MUST or SHOULD), one sentence, and the scenarios that
//! check it. `features/*.feature` hold those scenarios, tagged with the ids they check and with
//! their family tag. This module embeds both — the only place that does — and reads the table
//! once, on first use. The `catalogue` integration test keeps the two in agreement: every
//! requirement has a scenario, every scenario names requirements of its family, the *Scenarios*
//! column says what the tags say, and every step is in the step vocabulary the README lists.
//!
//! `features/sequence.toml`, the run's state machine, is embedded by [`crate::machine`].
//!
//! # Examples
//!
//! ```
//! use goldenpath_spec::catalogue::{self, Level};
//!
//! let r = catalogue::requirement("GP-SEQ-003").expect("a requirement of spec v1");
//! assert_eq!(r.level, Level::Must);
//! assert_eq!(r.level.to_string(), "MUST");
//! assert_eq!(r.family, "SEQ");
//! assert!(r.text.contains("tool_call_id"));
//!
//! assert!(catalogue::requirement("GP-SEQ-999").is_none());
//! assert!(catalogue::requirements().iter().any(|r| r.level == Level::Should));
//!
//! let (_, gherkin) = catalogue::FEATURE_FILES
//!     .iter()
//!     .find(|(name, _)| *name == "sequence.feature")
//!     .expect("the sequence feature is embedded");
//! assert!(gherkin.contains("@GP-SEQ-003"));
//! ```

use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;

/// The text of `features/README.md`: the requirement table and the step vocabulary.
pub const CATALOGUE: &str = include_str!("../../features/README.md");

/// Embeds `features/<name>` as `(name, text)`.
macro_rules! feature {
    ($name:literal) => {
        ($name, include_str!(concat!("../../features/", $name)))
    };
}

/// Every feature file, as `(file name, Gherkin text)`, e.g. `("auth.feature", "@auth\nFeature: ...")`,
/// in the order of the catalogue's families.
pub const FEATURE_FILES: &[(&str, &str)] = &[
    feature!("connection.feature"),
    feature!("auth.feature"),
    feature!("routing.feature"),
    feature!("sequence.feature"),
    feature!("isolation.feature"),
    feature!("heartbeat.feature"),
    feature!("liveness.feature"),
    feature!("wire.feature"),
];

/// The marker lines the requirement table sits between.
const TABLE_START: &str = "<!-- requirements:start -->";
const TABLE_END: &str = "<!-- requirements:end -->";

/// How binding a requirement is, in the sense of RFC 2119.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Level {
    /// `MUST`: a server that breaks it is not conformant.
    #[serde(rename = "MUST")]
    Must,
    /// `SHOULD`: a server that breaks it is conformant, with a finding (`pass-nonstrict`).
    #[serde(rename = "SHOULD")]
    Should,
}

impl Level {
    /// The level as the catalogue writes it: `MUST` or `SHOULD`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that width and alignment (`{:<6}`) apply.
        f.pad(self.as_str())
    }
}

/// One requirement: a row of the catalogue's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Requirement {
    /// The id, `GP-<FAMILY>-NNN`, e.g. `GP-ROUTE-002`. Never reused.
    pub id: &'static str,
    /// MUST or SHOULD.
    pub level: Level,
    /// The requirement, one sentence, as the catalogue writes it (Markdown).
    pub text: &'static str,
    /// The family: the id's middle part, e.g. `ROUTE`.
    pub family: &'static str,
}

/// Every requirement of the catalogue, in its order.
pub fn requirements() -> &'static [Requirement] {
    static REQUIREMENTS: OnceLock<Vec<Requirement>> = OnceLock::new();
    REQUIREMENTS.get_or_init(|| parse(CATALOGUE))
}

/// The requirement with this id, if the catalogue has one.
pub fn requirement(id: &str) -> Option<&'static Requirement> {
    requirements().iter().find(|r| r.id == id)
}

/// The marker lines the table of requirements judged by `load --restart-cmd` sits between.
const LOAD_TABLE_START: &str = "<!-- load-requirements:start -->";
const LOAD_TABLE_END: &str = "<!-- load-requirements:end -->";

/// The requirements only a deploy shows (`GP-DEPLOY-*`): judged by `goldenpath load
/// --restart-cmd`, never by `check`, so not among [`requirements`]. Their table's last column
/// says what judges them.
pub fn load_requirements() -> &'static [Requirement] {
    static REQUIREMENTS: OnceLock<Vec<Requirement>> = OnceLock::new();
    REQUIREMENTS.get_or_init(|| parse_between(CATALOGUE, LOAD_TABLE_START, LOAD_TABLE_END))
}

/// The requirement judged by `load --restart-cmd` with this id, if there is one.
pub fn load_requirement(id: &str) -> Option<&'static Requirement> {
    load_requirements().iter().find(|r| r.id == id)
}

/// Reads the rows of the table between the markers. The catalogue is embedded and tested, so a
/// row this cannot read is a bug of this crate: it panics, naming the row.
fn parse(catalogue: &'static str) -> Vec<Requirement> {
    parse_between(catalogue, TABLE_START, TABLE_END)
}

/// Reads the rows of the table between `start` and `end`.
fn parse_between(catalogue: &'static str, start: &str, end: &str) -> Vec<Requirement> {
    let (_, rest) = catalogue
        .split_once(start)
        .unwrap_or_else(|| panic!("features/README.md lacks {start}"));
    let (table, _) = rest
        .split_once(end)
        .unwrap_or_else(|| panic!("features/README.md lacks {end}"));
    table
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .filter_map(|line| {
            let cells = cells(line).unwrap_or_else(|| panic!("not a table row: {line}"));
            let [id, level, text, _scenarios] = cells[..] else {
                panic!("a requirement row has 4 cells (id, level, requirement, scenarios): {line}");
            };
            if id == "id" || id.starts_with("---") {
                return None; // the header and the separator
            }
            let level = match level {
                "MUST" => Level::Must,
                "SHOULD" => Level::Should,
                other => panic!("level {other:?} is neither MUST nor SHOULD: {line}"),
            };
            let family = id
                .strip_prefix("GP-")
                .and_then(|rest| rest.rsplit_once('-'))
                .filter(|(family, number)| {
                    !family.is_empty()
                        && family.bytes().all(|b| b.is_ascii_uppercase())
                        && number.len() == 3
                        && number.bytes().all(|b| b.is_ascii_digit())
                })
                .map(|(family, _)| family)
                .unwrap_or_else(|| panic!("id {id:?} is not GP-<FAMILY>-NNN: {line}"));
            Some(Requirement {
                id,
                level,
                text,
                family,
            })
        })
        .collect()
}

/// The trimmed cells of a Markdown table row `| a | b |`, or `None` if `line` is not one.
fn cells(line: &str) -> Option<Vec<&str>> {
    let inner = line.strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(str::trim).collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_table_holds_every_requirement_once() {
        let ids: BTreeSet<_> = requirements().iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), requirements().len(), "an id appears twice");
        assert!(requirements().len() >= 53, "spec v1 has 53 requirements");
        assert_eq!(requirements()[0].id, "GP-CONN-001");
    }

    #[test]
    fn families_are_the_eight_of_spec_v1() {
        let families: BTreeSet<_> = requirements().iter().map(|r| r.family).collect();
        let expected: BTreeSet<_> = ["CONN", "AUTH", "ROUTE", "SEQ", "ISO", "HB", "LIVE", "WIRE"]
            .into_iter()
            .collect();
        assert_eq!(families, expected);
    }

    #[test]
    fn deploy_requirements_are_their_own_family_judged_by_load_only() {
        let deploy = load_requirements();
        assert!(deploy.len() >= 3, "GP-DEPLOY-001..003");
        for r in deploy {
            assert_eq!(r.family, "DEPLOY", "{}", r.id);
            assert!(requirement(r.id).is_none(), "{} is in both tables", r.id);
        }
        let ids: BTreeSet<_> = deploy.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), deploy.len(), "an id appears twice");
        assert_eq!(
            load_requirement("GP-DEPLOY-001").map(|r| r.level),
            Some(Level::Must)
        );
    }

    #[test]
    fn a_row_reads_into_its_fields() {
        let r = requirement("GP-AUTH-008").expect("GP-AUTH-008");
        assert_eq!(r.level, Level::Should);
        assert_eq!(r.family, "AUTH");
        assert_eq!(
            r.text,
            "An HTTP refusal carries a JSON body naming the reason."
        );
        assert!(requirement("GP-AUTH").is_none());
        assert!(requirement("").is_none());
    }

    #[test]
    fn level_displays_and_serializes_as_the_catalogue_writes_it() {
        assert_eq!(Level::Must.to_string(), "MUST");
        assert_eq!(format!("{:<6}|", Level::Must), "MUST  |");
        assert_eq!(
            serde_json::to_string(&Level::Should).expect("serializes"),
            "\"SHOULD\""
        );
        let r = requirement("GP-HB-001").expect("GP-HB-001");
        let json = serde_json::to_value(r).expect("serializes");
        assert_eq!(json["level"], "MUST");
        assert_eq!(json["family"], "HB");
    }

    #[test]
    fn every_feature_file_is_embedded_with_its_family_tag() {
        assert_eq!(FEATURE_FILES.len(), 8);
        for (name, text) in FEATURE_FILES {
            let family = name.strip_suffix(".feature").expect("a .feature file");
            assert!(
                text.lines()
                    .any(|l| l.split_whitespace().any(|t| t == format!("@{family}"))),
                "{name} lacks its family tag @{family}"
            );
        }
    }

    #[test]
    fn cells_split_a_row() {
        assert_eq!(cells("| a | b c |  |"), Some(vec!["a", "b c", ""]));
        assert_eq!(cells("not a row"), None);
    }
}
