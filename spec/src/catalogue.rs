//! The requirement catalogue and the Gherkin features that check it.
//!
//! `features/README.md` lists every requirement of the spec, one row of a Markdown table each:
//! its id (`GP-<FAMILY>-NNN`), its level (MUST or SHOULD), one sentence, and the scenarios that
//! check it. `features/*.feature` hold those scenarios, tagged with the ids they check and with
//! their family tag. This module embeds both — the only place that does — and reads the table
//! once, on first use. The `catalogue` integration test keeps the two in agreement: every
//! requirement has a scenario, every scenario names requirements of its family (the observation
//! scenarios excepted, within the families their rule names), the *Scenarios*
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

/// Every feature file, as `(file name, Gherkin text)`, e.g. `("auth.feature", "@auth\nFeature: ...")`,
/// in the order of the [`families`] table. The build embeds every `features/*.feature` it finds
/// (`build.rs`): adding one needs its row in the families table of `features/README.md`, and no code.
pub const FEATURE_FILES: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/features.rs"));

/// The table of requirements: the name of the markers it sits between.
const REQUIREMENTS_TABLE: &str = "requirements";
/// The table of the requirements only `load --restart-cmd` judges.
const LOAD_REQUIREMENTS_TABLE: &str = "load-requirements";
/// The table of families: the name of the markers it sits between.
const FAMILIES_TABLE: &str = "families";

/// A family of requirements: one feature file, one id prefix. A row of the families table of
/// `features/README.md`.
///
/// ```
/// let f = goldenpath_spec::catalogue::family_of_tag("sequence").expect("a family of spec v1");
/// assert_eq!(f.ids, "SEQ");
/// assert_eq!(f.feature_file(), "sequence.feature");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Family {
    /// The feature's tag, without `@`, and its file's stem: `sequence`.
    pub tag: &'static str,
    /// The middle part of the family's requirement ids: `SEQ` in `GP-SEQ-003`; for the
    /// observation feature, several, space-separated (see [`Family::carries`]).
    pub ids: &'static str,
    /// What the family's requirements are about, one phrase.
    pub behaviour: &'static str,
}

impl Family {
    /// The family's feature file, `<tag>.feature`.
    pub fn feature_file(&self) -> String {
        format!("{}.feature", self.tag)
    }

    /// The id prefixes its scenarios may carry: its own, or, for the observation feature, those
    /// of every family whose requirements only read a run (the table lists them).
    pub fn carries(&self) -> impl Iterator<Item = &'static str> {
        self.ids.split_whitespace()
    }
}

/// Every family, in the table's order (the order families run and are reported in).
pub fn families() -> &'static [Family] {
    static FAMILIES: OnceLock<Vec<Family>> = OnceLock::new();
    FAMILIES.get_or_init(|| {
        rows(CATALOGUE, FAMILIES_TABLE)
            .map(|(line, cells)| {
                let [tag, ids, behaviour] = cells[..] else {
                    panic!("a family row has 3 cells (tag, ids, behaviour): {line}");
                };
                Family {
                    tag,
                    ids,
                    behaviour,
                }
            })
            .collect()
    })
}

/// The family whose feature carries this tag (without `@`), if any.
pub fn family_of_tag(tag: &str) -> Option<&'static Family> {
    families().iter().find(|f| f.tag == tag)
}

/// The family whose requirement ids have this middle part (`SEQ`), if any.
pub fn family_of_ids(ids: &str) -> Option<&'static Family> {
    families().iter().find(|f| f.ids == ids)
}

/// The data rows, as `(line, cells)`, of the Markdown table between `<!-- NAME:start -->` and
/// `<!-- NAME:end -->` of `text`, the header and separator skipped. The catalogue is embedded and
/// tested, so a table this cannot read is a bug of this crate: it panics, naming what is wrong.
fn rows(text: &'static str, name: &str) -> impl Iterator<Item = (&'static str, Vec<&'static str>)> {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let (_, rest) = text
        .split_once(&start)
        .unwrap_or_else(|| panic!("features/README.md lacks {start}"));
    let (table, _) = rest
        .split_once(&end)
        .unwrap_or_else(|| panic!("features/README.md lacks {end}"));
    table
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .skip(2) // the header and the separator
        .map(|line| {
            let cells = cells(line).unwrap_or_else(|| panic!("not a table row: {line}"));
            (line, cells)
        })
}

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
    REQUIREMENTS.get_or_init(|| parse(CATALOGUE, REQUIREMENTS_TABLE))
}

/// The requirement with this id, if the catalogue has one.
pub fn requirement(id: &str) -> Option<&'static Requirement> {
    requirements().iter().find(|r| r.id == id)
}

/// The requirements only a deploy shows (`GP-DEPLOY-*`): judged by `goldenpath load
/// --restart-cmd`, never by `check`, so not among [`requirements`]. Their table (between
/// `<!-- load-requirements:start -->` and `<!-- load-requirements:end -->`) says in its last
/// column what judges them.
pub fn load_requirements() -> &'static [Requirement] {
    static REQUIREMENTS: OnceLock<Vec<Requirement>> = OnceLock::new();
    REQUIREMENTS.get_or_init(|| parse(CATALOGUE, LOAD_REQUIREMENTS_TABLE))
}

/// The requirement judged by `load --restart-cmd` with this id, if there is one.
pub fn load_requirement(id: &str) -> Option<&'static Requirement> {
    load_requirements().iter().find(|r| r.id == id)
}

/// Reads a requirement table. The catalogue is embedded and tested, so a row this cannot read
/// is a bug of this crate: it panics, naming the row.
fn parse(catalogue: &'static str, table: &str) -> Vec<Requirement> {
    rows(catalogue, table)
        .map(|(line, cells)| {
            let [id, level, text, _scenarios] = cells[..] else {
                panic!("a requirement row has 4 cells (id, level, requirement, scenarios): {line}");
            };
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
            Requirement {
                id,
                level,
                text,
                family,
            }
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
    fn every_requirement_belongs_to_a_family_of_the_table() {
        let of_requirements: BTreeSet<_> = requirements().iter().map(|r| r.family).collect();
        let of_table: BTreeSet<_> = families().iter().flat_map(Family::carries).collect();
        assert_eq!(of_requirements, of_table);
        for family in ["CONN", "AUTH", "ROUTE", "SEQ", "ISO", "HB", "LIVE", "WIRE"] {
            assert!(of_table.contains(family), "spec v1's family {family}");
        }
        assert_eq!(families()[0].tag, "connection");
        assert_eq!(family_of_ids("ROUTE").map(|f| f.tag), Some("routing"));
        assert!(family_of_tag("nope").is_none());
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
    fn every_feature_file_is_embedded_with_its_family_tag_in_the_tables_order() {
        let embedded: Vec<String> = FEATURE_FILES.iter().map(|(n, _)| n.to_string()).collect();
        let families: Vec<String> = families().iter().map(Family::feature_file).collect();
        assert_eq!(embedded, families);
        for (name, text) in FEATURE_FILES {
            let family = name.strip_suffix(".feature").expect("a .feature file");
            assert!(
                text.lines()
                    .any(|l| l.split_whitespace().any(|t| t == format!("@{family}"))),
                "{name} lacks its family tag @{family}"
            );
        }
    }

    mod discovery {
        include!("discover.rs");

        /// The build script's discovery, run on a copy of `features/` with a family added: the
        /// new file is embedded in its row's place, with no code changed.
        #[test]
        fn a_new_feature_file_is_found_in_its_rows_place() {
            let dir = std::env::temp_dir().join(format!("gp-discover-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            for (name, text) in super::FEATURE_FILES {
                std::fs::write(dir.join(name), text).expect("writable");
            }
            std::fs::write(dir.join("resume.feature"), "@resume\nFeature: Resume\n")
                .expect("writable");
            std::fs::write(dir.join("notes.txt"), "not a feature").expect("writable");
            let readme = super::CATALOGUE.replace(
                "| wire | WIRE |",
                "| resume | RESUME | a client that reconnects gets what it missed |\n| wire | WIRE |",
            );
            let found = discover_features(&dir, &readme).expect("readable");
            std::fs::remove_dir_all(&dir).expect("removable");
            let wire = found
                .iter()
                .position(|f| f == "wire.feature")
                .expect("wire");
            assert_eq!(found[wire - 1], "resume.feature");
            assert_eq!(found.len(), super::FEATURE_FILES.len() + 1);
            assert!(!found.iter().any(|f| f == "notes.txt"));
        }

        #[test]
        fn a_file_without_a_row_comes_last() {
            let dir = std::env::temp_dir().join(format!("gp-discover-last-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a temporary directory");
            for name in ["a.feature", "wire.feature", "connection.feature"] {
                std::fs::write(dir.join(name), "").expect("writable");
            }
            let found = discover_features(&dir, super::CATALOGUE).expect("readable");
            std::fs::remove_dir_all(&dir).expect("removable");
            assert_eq!(found, ["connection.feature", "wire.feature", "a.feature"]);
        }
    }

    #[test]
    fn cells_split_a_row() {
        assert_eq!(cells("| a | b c |  |"), Some(vec!["a", "b c", ""]));
        assert_eq!(cells("not a row"), None);
    }
}
