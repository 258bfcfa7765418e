//! `goldenpath explain GP-XXX-NNN`: everything about one requirement, found by its id.
//!
//! The requirement's sentence and level and its family come from the catalogue
//! (`features/README.md`); its scenarios from the embedded features; the schemas it speaks of from
//! the message types its sentence and its scenarios' steps name; the faults that kill it from each
//! fault's own declaration ([`goldenpath_reference::Fault::breaks`]). Only where the code lives is
//! kept apart, in `index.toml` beside this module: for each requirement, the reference code that
//! implements it and the runner code that judges it. The tests below fail when an id has no
//! entry there, an entry names no requirement, a path is missing or a `path#name` names nothing
//! its file defines, so the index cannot go stale silently.
//!
//! # Examples
//!
//! ```
//! let e = goldenpath::explain::explain("gp-seq-003").expect("a requirement of spec v1");
//! assert_eq!(e.id, "GP-SEQ-003");
//! assert!(e.schemas.contains(&"schemas/tool_executing.json".to_string()));
//! assert!(!e.faults.is_empty());
//! assert!(e.to_string().contains("killed by"));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use goldenpath_spec::MessageType;
use goldenpath_spec::catalogue::{self, Level};
use serde::{Deserialize, Serialize};

/// The index of where each requirement lives in the code (see the module documentation).
pub const INDEX: &str = include_str!("index.toml");

/// One entry of the index.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// The reference code that implements the requirement, `path` or `path#name`.
    reference: Vec<String>,
    /// The runner code that judges it.
    judge: Vec<String>,
}

fn index() -> &'static BTreeMap<String, Entry> {
    static INDEX_PARSED: OnceLock<BTreeMap<String, Entry>> = OnceLock::new();
    INDEX_PARSED.get_or_init(|| {
        // Embedded and tested: a parse failure is a bug of this crate.
        toml::from_str(INDEX).unwrap_or_else(|e| panic!("suite/src/explain/index.toml: {e}"))
    })
}

/// One scenario that checks the requirement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScenarioRef {
    /// The feature file, e.g. `features/sequence.feature`.
    pub feature: String,
    /// The scenario's name.
    pub name: String,
    /// Its tags beside requirement ids and the family's (`directives`, `tool-trigger`).
    pub tags: Vec<String>,
}

/// Everything about one requirement.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The id, `GP-<FAMILY>-NNN`.
    pub id: &'static str,
    /// MUST or SHOULD.
    pub level: Level,
    /// The sentence, as the catalogue writes it.
    pub text: &'static str,
    /// The family's tag, `sequence`.
    pub family: &'static str,
    /// The scenarios that check it.
    pub scenarios: Vec<ScenarioRef>,
    /// The schemas of the message types its sentence or its scenarios name.
    pub schemas: Vec<String>,
    /// The reference code that implements it (`path` or `path#name`).
    pub reference: Vec<String>,
    /// The runner code that judges it.
    pub judge: Vec<String>,
    /// The names of the runner's checks that judge it (`features/checks.toml`): grep one in
    /// `suite/src` to find the line that makes it.
    pub checks: Vec<&'static str>,
    /// The faults (`goldenpath serve --fault NAME`) that break it, as each declares.
    pub faults: Vec<String>,
}

/// Why [`explain`] found nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    /// No requirement has this id.
    #[error("no requirement {id} in features/README.md{}", hint(.near))]
    Unknown {
        /// The id asked for, as given.
        id: String,
        /// Ids of the same family, for the message.
        near: Vec<&'static str>,
    },
}

fn hint(near: &[&str]) -> String {
    if near.is_empty() {
        format!(
            " (ids look like {}; `goldenpath check --list` lists them)",
            crate::example_id()
        )
    } else {
        format!("; that family has {}", near.join(", "))
    }
}

/// Everything about the requirement `id` (case does not matter).
pub fn explain(id: &str) -> Result<Explanation, ExplainError> {
    let wanted = id.trim().to_ascii_uppercase();
    let found = catalogue::requirement(&wanted).or_else(|| catalogue::load_requirement(&wanted));
    let Some(r) = found else {
        let family = wanted.rsplit_once('-').map(|(f, _)| format!("{f}-"));
        let near = catalogue::requirements()
            .iter()
            .filter(|r| family.as_deref().is_some_and(|f| r.id.starts_with(f)))
            .map(|r| r.id)
            .collect();
        return Err(ExplainError::Unknown {
            id: id.to_string(),
            near,
        });
    };
    let family = catalogue::family_of_ids(r.family)
        .map(|f| f.tag)
        .unwrap_or(r.family);
    let mut steps = String::new();
    let mut scenarios = Vec::new();
    for feature in crate::executor::features() {
        let file = feature
            .path
            .as_ref()
            .map(|p| format!("features/{}", p.display()))
            .unwrap_or_default();
        for scenario in feature
            .scenarios
            .iter()
            .chain(feature.rules.iter().flat_map(|rule| rule.scenarios.iter()))
        {
            if !scenario.tags.iter().any(|t| t == r.id) {
                continue;
            }
            for step in &scenario.steps {
                steps.push_str(&step.value);
                steps.push('\n');
            }
            let other_tags = scenario
                .tags
                .iter()
                .filter(|t| !t.starts_with("GP-"))
                .cloned()
                .collect();
            let name = scenario.name.clone();
            if !scenarios
                .iter()
                .any(|s: &ScenarioRef| s.name == name && s.feature == file)
            {
                scenarios.push(ScenarioRef {
                    feature: file.clone(),
                    name,
                    tags: other_tags,
                });
            }
        }
    }
    // The message types the sentence names, or whose schema defines a field it names in code
    // (`tool_call_id`: snake-case names only, `code` or `error` would name half the schemas), and
    // those its scenarios' steps name ("sends a user message").
    let fields: Vec<&str> = r
        .text
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|f| f.contains('_') && f.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect();
    let schemas = MessageType::ALL
        .into_iter()
        .filter(|t| {
            names(r.text, t.as_str())
                || names(&steps, &t.as_str().replace('_', " "))
                || fields.iter().any(|field| {
                    goldenpath_spec::schema::source(*t).contains(&format!("\"{field}\""))
                })
        })
        .map(|t| format!("schemas/{}.json", t.as_str()))
        .collect();
    let entry = index().get(r.id);
    Ok(Explanation {
        id: r.id,
        level: r.level,
        text: r.text,
        family,
        scenarios,
        schemas,
        reference: entry.map(|e| e.reference.clone()).unwrap_or_default(),
        judge: entry.map(|e| e.judge.clone()).unwrap_or_default(),
        checks: goldenpath_spec::checks::judging(r.id),
        faults: faults_breaking(r.id),
    })
}

/// Whether `text` names `word` as a whole word (`agent_error` is not `error`).
fn names(text: &str, word: &str) -> bool {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

/// The faults whose declaration says they break `id`.
fn faults_breaking(id: &str) -> Vec<String> {
    use clap::ValueEnum;
    goldenpath_reference::Fault::value_variants()
        .iter()
        .filter(|f| f.breaks().contains(&id))
        .map(|f| f.name())
        .collect()
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}  {}  ({} family)", self.id, self.level, self.family)?;
        writeln!(f, "  {}", self.text)?;
        writeln!(f)?;
        writeln!(f, "scenarios")?;
        for s in &self.scenarios {
            let tags: String = s.tags.iter().map(|t| format!("  @{t}")).collect();
            writeln!(f, "  {}: {}{tags}", s.feature, s.name)?;
        }
        list(f, "schemas", &self.schemas)?;
        list(f, "implemented in (reference)", &self.reference)?;
        list(f, "judged in (runner)", &self.judge)?;
        let checks: Vec<String> = self
            .checks
            .iter()
            .map(|name| format!("check(\"{name}\")"))
            .collect();
        if !checks.is_empty() {
            list(f, "checked as (runner, features/checks.toml)", &checks)?;
        }
        let faults: Vec<String> = self
            .faults
            .iter()
            .map(|name| format!("{name}   goldenpath serve --fault {name}"))
            .collect();
        list(f, "killed by (faults, KILL_MATRIX.md)", &faults)
    }
}

/// Every requirement: those `check` judges, then those only `load --restart-cmd` does.
fn all() -> impl Iterator<Item = &'static catalogue::Requirement> {
    catalogue::requirements()
        .iter()
        .chain(catalogue::load_requirements())
}

fn list(f: &mut fmt::Formatter<'_>, title: &str, items: &[String]) -> fmt::Result {
    writeln!(f, "{title}")?;
    if items.is_empty() {
        writeln!(f, "  (none)")?;
    }
    for item in items {
        writeln!(f, "  {item}")?;
    }
    Ok(())
}

/// The map of every requirement as a Markdown table: id, level, scenarios, reference code,
/// runner code, faults. `ARCHITECTURE.md` holds it between `<!-- explain:start -->` and
/// `<!-- explain:end -->` (`goldenpath explain --table`; a test keeps the two equal).
pub fn table() -> String {
    let mut out = String::from(
        "| id | level | scenarios | implemented in | judged in | killed by |\n|---|---|---|---|---|---|\n",
    );
    for r in all() {
        let e = explain(r.id).expect("every catalogue id explains");
        let code = |items: &[String]| {
            items
                .iter()
                .map(|i| format!("`{i}`"))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let faults = e
            .faults
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            e.id,
            e.level,
            e.scenarios.len(),
            code(&e.reference),
            code(&e.judge),
            if faults.is_empty() {
                "—".into()
            } else {
                faults
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn root() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    #[test]
    fn every_requirement_has_an_entry_and_every_entry_a_requirement() {
        for r in all() {
            let entry = index()
                .get(r.id)
                .unwrap_or_else(|| panic!("{} has no entry in suite/src/explain/index.toml", r.id));
            assert!(!entry.reference.is_empty(), "{}: no reference code", r.id);
            assert!(!entry.judge.is_empty(), "{}: no runner code", r.id);
        }
        for id in index().keys() {
            assert!(
                catalogue::requirement(id).is_some() || catalogue::load_requirement(id).is_some(),
                "index.toml names {id}, which features/README.md does not have"
            );
        }
    }

    #[test]
    fn every_place_the_index_names_exists() {
        for (id, entry) in index() {
            for place in entry.reference.iter().chain(&entry.judge) {
                let (path, name) = place.split_once('#').unwrap_or((place, ""));
                let text = std::fs::read_to_string(root().join(path))
                    .unwrap_or_else(|e| panic!("{id}: {path}: {e}"));
                if !name.is_empty() {
                    let defined = [
                        "fn ", "struct ", "enum ", "trait ", "type ", "const ", "mod ",
                    ]
                    .iter()
                    .any(|kw| names(&text, &format!("{kw}{name}")));
                    assert!(defined, "{id}: {path} defines no `{name}`");
                }
            }
        }
    }

    #[test]
    fn every_requirement_explains_with_its_scenarios() {
        for r in catalogue::requirements() {
            let e = explain(r.id).expect("explains");
            assert!(!e.scenarios.is_empty(), "{}: no scenario", r.id);
            assert!(e.to_string().starts_with(r.id));
        }
    }

    #[test]
    fn a_requirement_shows_its_schemas_and_faults() {
        let e = explain("GP-HB-001").expect("explains");
        for schema in ["schemas/ping.json", "schemas/pong.json"] {
            assert!(e.schemas.iter().any(|s| s == schema), "{:?}", e.schemas);
        }
        assert!(
            e.faults.iter().any(|f| f == "ignore-ping"),
            "{:?}",
            e.faults
        );
        let e = explain("GP-SEQ-010").expect("explains");
        assert!(e.schemas.contains(&"schemas/agent_error.json".to_string()));
    }

    #[test]
    fn a_name_is_matched_as_a_whole_word() {
        assert!(names("ends with `agent_error`", "agent_error"));
        assert!(!names("ends with `agent_error`", "error"));
        assert!(names("an `error` frame", "error"));
        assert!(!names("errors", "error"));
    }

    #[test]
    fn an_unknown_id_names_its_family() {
        let e = explain("GP-SEQ-999").expect_err("no such requirement");
        let text = e.to_string();
        assert!(
            text.contains("GP-SEQ-999") && text.contains("GP-SEQ-001"),
            "{text}"
        );
        let e = explain("nonsense").expect_err("no such requirement");
        assert!(e.to_string().contains("ids look like"), "{e}");
    }

    #[test]
    fn architecture_md_holds_the_current_table() {
        let path = root().join("ARCHITECTURE.md");
        let text = std::fs::read_to_string(&path).expect("ARCHITECTURE.md");
        let (head, rest) = text
            .split_once("<!-- explain:start -->\n")
            .expect("ARCHITECTURE.md has <!-- explain:start -->");
        let (_, tail) = rest
            .split_once("<!-- explain:end -->")
            .expect("ARCHITECTURE.md has <!-- explain:end -->");
        let fresh = format!(
            "{head}<!-- explain:start -->\n{}<!-- explain:end -->{tail}",
            table()
        );
        if std::env::var_os("GOLDENPATH_BLESS").is_some() {
            std::fs::write(&path, &fresh).expect("writable");
        } else {
            assert!(
                text == fresh,
                "ARCHITECTURE.md's requirement map is stale: GOLDENPATH_BLESS=1 cargo test -p goldenpath --lib explain"
            );
        }
    }
}
