//! The requirement catalogue and the Gherkin features, checked against each other.
//!
//! Every embedded feature parses (with the `gherkin` crate, the parser the runner uses), and:
//!
//! - every file in `features/` ending in `.feature` is embedded, and every feature carries its
//!   family tag (`@routing` in `routing.feature`) and no other family's;
//! - every scenario carries at least one requirement tag; every tag that looks like a requirement
//!   (`GP-...`) names one of the catalogue; a scenario's requirements belong to its feature's
//!   family (`@GP-ROUTE-*` only in `routing.feature`). **Cross-family tags are not allowed**
//!   outside `observation.feature`: a scenario that also exercises another family's rule (most
//!   scenarios receive a run, and the machine judges every run) is still counted for its own
//!   family only, so that a requirement's verdict comes from the scenarios written to check it;
//! - an observation scenario (`observation.feature`) carries requirements of the families that
//!   only read a run (the observation row of the families table), each judged by one of its Then steps; it sends no directive and
//!   uses no step that fails every tag of its scenario (`FAILS_EVERY_TAG`), so that one broken
//!   requirement is never counted against the others it shares a run with;
//! - every requirement has a scenario, and the *Scenarios* column of the catalogue lists exactly
//!   the scenarios tagged with the row's id (`file:Scenario name`, joined by `; `);
//! - the only other scenario tags are `@directives`, carried exactly by the scenarios that send
//!   a test directive, and `@tool-trigger`, by those that send the target's tool trigger;
//! - after outline expansion, there are enough scenarios, and every step matches exactly one
//!   pattern of the catalogue's *Step vocabulary*, every pattern is used, and there are at most
//!   `MAX_PATTERNS` of them: the vocabulary stays the runner's contract.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use gherkin::{Feature, GherkinEnv, StepType};
use goldenpath_spec::catalogue::{self, CATALOGUE, FEATURE_FILES};

/// The feature whose scenarios observe one run for several families' requirements.
const OBSERVATION: &str = "observation";
/// The families an observation scenario may carry: those whose requirements only read a run,
/// as the observation row of the families table lists them.
fn observed() -> Vec<&'static str> {
    catalogue::family_of_tag(OBSERVATION)
        .map(|f| f.carries().collect())
        .unwrap_or_default()
}
/// Steps that fail every requirement their scenario is tagged with: not for observation.
const FAILS_EVERY_TAG: &[&str] = &["Then no run starts", "'s connection is still open"];

/// The scenario tag, beside requirement ids, that the runner understands.
const DIRECTIVES_TAG: &str = "directives";
/// The tag of the scenarios that send the target's tool trigger.
const TOOL_TRIGGER_TAG: &str = "tool-trigger";

/// The step that sends a test directive (see the step vocabulary).
const DIRECTIVE_STEP: &str = "with the directive";

const MIN_SCENARIOS: usize = 35;
const MIN_REQUIREMENTS: usize = 30;
// 56 for one instance, the cross-instance steps of GP-ISO-010..012 and the resume steps of
// GP-SEQ-014.
const MAX_PATTERNS: usize = 60;

/// One scenario to run: a plain scenario, or one row of an outline's examples.
#[derive(Debug)]
struct Case {
    /// The feature file's stem, e.g. `routing`.
    file: &'static str,
    /// The scenario's name as written (an outline's name is shared by its rows).
    name: String,
    /// Where the scenario (or the examples row) is, for messages.
    line: usize,
    /// The scenario's tags and its examples' tags, without `@`.
    tags: Vec<String>,
    /// Background steps, then the scenario's, outline placeholders filled in: `When alice ...`.
    steps: Vec<String>,
}

impl Case {
    fn at(&self) -> String {
        format!("{}.feature:{} ({})", self.file, self.line, self.name)
    }

    fn requirement_tags(&self) -> impl Iterator<Item = &str> {
        self.tags
            .iter()
            .map(String::as_str)
            .filter(|t| looks_like_requirement(t))
    }
}

fn looks_like_requirement(tag: &str) -> bool {
    tag.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("gp-"))
}

fn stem(file: &'static str) -> &'static str {
    file.strip_suffix(".feature")
        .unwrap_or_else(|| panic!("{file} is not a .feature file"))
}

fn family_of(stem: &str) -> &'static str {
    if stem == OBSERVATION {
        return OBSERVATION;
    }
    catalogue::family_of_tag(stem)
        .map(|f| f.ids)
        .unwrap_or_else(|| {
            panic!("{stem}.feature has no row in the families table of features/README.md")
        })
}

/// Every embedded feature, parsed.
fn features() -> Vec<(&'static str, Feature)> {
    FEATURE_FILES
        .iter()
        .map(|(file, text)| {
            let feature = Feature::parse(text, GherkinEnv::default())
                .unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
            (stem(file), feature)
        })
        .collect()
}

fn keyword(ty: StepType) -> &'static str {
    match ty {
        StepType::Given => "Given",
        StepType::When => "When",
        StepType::Then => "Then",
    }
}

/// Replaces each `<column>` of an outline by the row's value, as the runner does; panics on a
/// placeholder that names no column (the runner would refuse the feature).
fn fill(text: &str, row: &[(&str, &str)], at: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>').map(|c| open + c) else {
            break;
        };
        let name = &rest[open + 1..close];
        let value = row
            .iter()
            .find(|(column, _)| *column == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("{at}: <{name}> names no column of the examples"));
        out.push_str(&rest[..open]);
        out.push_str(value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Every scenario of every feature, outlines expanded.
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (file, feature) in features() {
        assert!(
            feature.rules.is_empty(),
            "{file}.feature: the features use no Rule"
        );
        let background: Vec<String> = feature
            .background
            .iter()
            .flat_map(|b| &b.steps)
            .map(|s| format!("{} {}", keyword(s.ty), s.value))
            .collect();
        for scenario in &feature.scenarios {
            let steps = || {
                scenario
                    .steps
                    .iter()
                    .map(|s| format!("{} {}", keyword(s.ty), s.value))
            };
            if scenario.examples.is_empty() {
                cases.push(Case {
                    file,
                    name: scenario.name.clone(),
                    line: scenario.position.line,
                    tags: scenario.tags.clone(),
                    steps: background.iter().cloned().chain(steps()).collect(),
                });
                continue;
            }
            for examples in &scenario.examples {
                let table = examples.table.as_ref().unwrap_or_else(|| {
                    panic!(
                        "{file}.feature:{}: examples without a table",
                        examples.position.line
                    )
                });
                let (header, rows) = table.rows.split_first().expect("a header row");
                assert!(
                    !rows.is_empty(),
                    "{file}.feature:{}: no examples row",
                    table.position.line
                );
                for (i, row) in rows.iter().enumerate() {
                    let line = table.position.line + 1 + i;
                    let at = format!("{file}.feature:{line}");
                    let row: Vec<(&str, &str)> = header
                        .iter()
                        .map(String::as_str)
                        .zip(row.iter().map(String::as_str))
                        .collect();
                    cases.push(Case {
                        file,
                        name: fill(&scenario.name, &row, &at),
                        line,
                        tags: scenario
                            .tags
                            .iter()
                            .chain(&examples.tags)
                            .cloned()
                            .collect(),
                        steps: background
                            .iter()
                            .cloned()
                            .chain(steps().map(|s| fill(&s, &row, &at)))
                            .collect(),
                    });
                }
            }
        }
    }
    cases
}

/// The lines of the README section under `heading` (up to the next heading of the same or a
/// higher level).
fn section(heading: &str) -> Vec<&'static str> {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let mut lines = CATALOGUE.lines().skip_while(|l| l.trim() != heading);
    assert!(
        lines.next().is_some(),
        "features/README.md lacks the section {heading}"
    );
    lines
        .take_while(|l| {
            let hashes = l.chars().take_while(|&c| c == '#').count();
            !(hashes > 0 && hashes <= level && l[hashes..].starts_with(' '))
        })
        .collect()
}

/// The cells of the body rows of the first Markdown table among `lines`.
fn table_rows(lines: &[&'static str]) -> Vec<Vec<&'static str>> {
    lines
        .iter()
        .map(|l| l.trim())
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and the separator
        .map(|l| {
            let inner = l
                .strip_prefix('|')
                .and_then(|l| l.strip_suffix('|'))
                .expect("a row");
            inner.split('|').map(str::trim).collect()
        })
        .collect()
}

/// The texts between backticks in `cell`.
fn backticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// The only backticked text of a vocabulary table's first cell.
fn code_cell(cell: &'static str) -> &'static str {
    match backticked(cell)[..] {
        [code] => code,
        _ => panic!("expected one `code` span in the cell {cell:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The step vocabulary, and a tiny matcher for its patterns.

/// A piece of a compiled step pattern.
#[derive(Debug, Clone)]
enum Piece {
    /// Exactly this text.
    Literal(String),
    /// `<n>`: one or more ASCII digits.
    Number,
    /// `<text>`: any text, possibly empty (the pattern puts the quotes around it).
    Text,
    /// An enumerated placeholder: one of these alternatives, each itself a pattern.
    Choice(Vec<Vec<Piece>>),
}

struct Vocabulary {
    /// Each pattern as written, with its compiled form.
    patterns: Vec<(&'static str, Vec<Piece>)>,
}

impl Vocabulary {
    fn from_catalogue() -> Vocabulary {
        let mut choices = BTreeMap::new();
        for row in table_rows(&section("### Placeholders")) {
            let written = code_cell(row[0]);
            let name = written
                .trim_matches('"')
                .strip_prefix('<')
                .and_then(|n| n.strip_suffix('>'))
                .unwrap_or_else(|| panic!("placeholder {written:?} is not <name>"));
            if name == "n" || name == "text" {
                continue; // built in: digits, and quoted text
            }
            let what = row[1].split(" — ").next().expect("a cell");
            let alternatives = what
                .strip_prefix("one of ")
                .map(backticked)
                .unwrap_or_else(|| panic!("placeholder <{name}>: write `one of `a`, `b``"));
            assert!(
                alternatives.len() >= 2,
                "placeholder <{name}> has fewer than two alternatives"
            );
            choices.insert(name, alternatives);
        }
        let patterns = table_rows(&section("### Steps"))
            .into_iter()
            .map(|row| {
                let pattern = code_cell(row[0]);
                assert!(
                    ["Given ", "When ", "Then "]
                        .iter()
                        .any(|k| pattern.starts_with(k)),
                    "pattern {pattern:?} does not start with Given, When or Then"
                );
                assert!(
                    !row[1].is_empty(),
                    "pattern {pattern:?} does not say what the runner does"
                );
                (pattern, compile(pattern, &choices, 0))
            })
            .collect();
        Vocabulary { patterns }
    }

    fn matching(&self, step: &str) -> Vec<&'static str> {
        self.patterns
            .iter()
            .filter(|(_, pieces)| matches(pieces, step))
            .map(|(p, _)| *p)
            .collect()
    }
}

fn compile(pattern: &str, choices: &BTreeMap<&str, Vec<&'static str>>, depth: usize) -> Vec<Piece> {
    assert!(depth < 4, "placeholders nest too deep in {pattern:?}");
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('<') {
        let close = open
            + rest[open..]
                .find('>')
                .unwrap_or_else(|| panic!("unclosed < in {pattern:?}"));
        let name = &rest[open + 1..close];
        literal.push_str(&rest[..open]);
        if !literal.is_empty() {
            pieces.push(Piece::Literal(std::mem::take(&mut literal)));
        }
        pieces.push(match name {
            "n" => Piece::Number,
            "text" => Piece::Text,
            _ => Piece::Choice(
                choices
                    .get(name)
                    .unwrap_or_else(|| {
                        panic!("{pattern:?}: <{name}> is no placeholder of the vocabulary")
                    })
                    .iter()
                    .map(|alternative| compile(alternative, choices, depth + 1))
                    .collect(),
            ),
        });
        rest = &rest[close + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    pieces
}

/// Whether `pieces` match the whole of `input`, trying every way (the patterns are short).
fn matches(pieces: &[Piece], input: &str) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return input.is_empty();
    };
    match first {
        Piece::Literal(text) => input
            .strip_prefix(text.as_str())
            .is_some_and(|r| matches(rest, r)),
        Piece::Number => {
            let digits = input.bytes().take_while(u8::is_ascii_digit).count();
            (1..=digits).any(|n| matches(rest, &input[n..]))
        }
        Piece::Text => (0..=input.len())
            .filter(|&i| input.is_char_boundary(i))
            .any(|i| matches(rest, &input[i..])),
        Piece::Choice(alternatives) => alternatives.iter().any(|alternative| {
            let joined: Vec<Piece> = alternative.iter().chain(rest).cloned().collect();
            matches(&joined, input)
        }),
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn every_feature_file_is_embedded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../features");
    let on_disk: BTreeSet<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".feature"))
        .collect();
    let embedded: BTreeSet<String> = FEATURE_FILES
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        on_disk, embedded,
        "catalogue::FEATURE_FILES and features/*.feature differ"
    );
    for (name, text) in FEATURE_FILES {
        let on_disk = fs::read_to_string(dir.join(name)).expect("readable");
        assert_eq!(&on_disk, text, "{name}: the embedded text is stale");
    }
}

#[test]
fn every_feature_carries_its_family_tag_only() {
    let family_tags: BTreeSet<&str> = catalogue::families().iter().map(|f| f.tag).collect();
    for (file, feature) in features() {
        let tags: BTreeSet<&str> = feature.tags.iter().map(String::as_str).collect();
        assert!(
            tags.contains(file),
            "{file}.feature lacks its family tag @{file}"
        );
        for tag in &tags {
            assert!(
                *tag == file || !family_tags.contains(tag),
                "{file}.feature carries another family's tag @{tag}"
            );
            assert!(
                !looks_like_requirement(tag),
                "{file}.feature: tag requirements on scenarios, not on the feature (@{tag})"
            );
        }
    }
}

#[test]
fn every_scenario_checks_requirements_of_its_family() {
    let mut failures = Vec::new();
    for case in cases() {
        let family = family_of(case.file);
        if case.requirement_tags().next().is_none() {
            failures.push(format!("{}: no requirement tag", case.at()));
        }
        for tag in &case.tags {
            if looks_like_requirement(tag) {
                match catalogue::requirement(tag) {
                    None => failures.push(format!(
                        "{}: @{tag} names no requirement of the catalogue",
                        case.at()
                    )),
                    Some(r) if family == OBSERVATION && !observed().contains(&r.family) => failures
                        .push(format!(
                            "{}: @{tag} is a {} requirement: observation scenarios carry only {:?}",
                            case.at(),
                            r.family,
                            observed()
                        )),
                    Some(_) if family == OBSERVATION => {}
                    Some(r) if r.family != family => failures.push(format!(
                        "{}: @{tag} is a {} requirement, not of this feature's family {family}",
                        case.at(),
                        r.family
                    )),
                    Some(_) => {}
                }
            } else if tag != DIRECTIVES_TAG && tag != TOOL_TRIGGER_TAG {
                failures.push(format!("{}: unknown tag @{tag}", case.at()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn observation_scenarios_send_no_directive_and_fail_no_tag_wholesale() {
    let mut seen = 0;
    for case in cases().iter().filter(|c| c.file == OBSERVATION) {
        seen += 1;
        for step in &case.steps {
            assert!(
                !step.contains(DIRECTIVE_STEP) && !FAILS_EVERY_TAG.iter().any(|s| step.contains(s)),
                "{}: an observation scenario may not use the step {step:?}",
                case.at()
            );
        }
        assert!(
            !case
                .tags
                .iter()
                .any(|t| t == DIRECTIVES_TAG || t == TOOL_TRIGGER_TAG),
            "{}: an observation scenario runs on every backend",
            case.at()
        );
    }
    assert!(seen > 0, "observation.feature has no scenario");
}

#[test]
fn scenarios_that_send_a_directive_are_tagged_directives() {
    for case in cases() {
        let sends = case.steps.iter().any(|s| s.contains(DIRECTIVE_STEP));
        let tagged = case.tags.iter().any(|t| t == DIRECTIVES_TAG);
        assert_eq!(
            sends,
            tagged,
            "{}: sends a directive: {sends}, tagged @{DIRECTIVES_TAG}: {tagged}",
            case.at()
        );
    }
}

#[test]
fn scenario_names_are_unique_and_fit_the_scenarios_column() {
    for (file, feature) in features() {
        let mut seen = BTreeSet::new();
        for scenario in &feature.scenarios {
            let name = scenario.name.as_str();
            assert!(
                seen.insert(name),
                "{file}.feature: two scenarios are named {name:?}"
            );
            assert!(
                !name.is_empty() && !name.contains([';', '|', '<']),
                "{file}.feature: bad scenario name {name:?}"
            );
        }
    }
}

#[test]
fn every_requirement_has_a_scenario() {
    let tagged: BTreeSet<String> = cases()
        .iter()
        .flat_map(|c| c.requirement_tags().map(str::to_owned))
        .collect();
    let missing: Vec<&str> = catalogue::requirements()
        .iter()
        .map(|r| r.id)
        .filter(|id| !tagged.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "requirements no scenario checks: {missing:?}"
    );
}

#[test]
fn the_scenarios_column_lists_the_tagged_scenarios() {
    let mut by_tags: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for case in cases() {
        for id in case.requirement_tags() {
            by_tags
                .entry(id.to_owned())
                .or_default()
                .insert(format!("{}:{}", case.file, case.name));
        }
    }
    let (_, rest) = CATALOGUE
        .split_once("<!-- requirements:start -->")
        .expect("the start marker");
    let (table, _) = rest
        .split_once("<!-- requirements:end -->")
        .expect("the end marker");
    let lines: Vec<&'static str> = table.lines().collect();
    let mut failures = Vec::new();
    let rows = table_rows(&lines);
    assert_eq!(
        rows.len(),
        catalogue::requirements().len(),
        "rows of the table and requirements() differ"
    );
    for row in rows {
        let [id, _, _, column] = row[..] else {
            panic!("a row of 4 cells: {row:?}")
        };
        let listed: BTreeSet<String> = column
            .split("; ")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let tagged = by_tags.remove(id).unwrap_or_default();
        for name in listed.difference(&tagged) {
            failures.push(format!(
                "{id}: the column lists {name:?}, which does not carry @{id}"
            ));
        }
        for name in tagged.difference(&listed) {
            failures.push(format!(
                "{id}: {name:?} carries @{id} but the column does not list it"
            ));
        }
        let mut in_order: Vec<&str> = column
            .split("; ")
            .filter(|s| !s.trim().is_empty())
            .collect();
        let count = in_order.len();
        in_order.dedup();
        if in_order.len() != count {
            failures.push(format!("{id}: the column lists a scenario twice"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn there_are_enough_scenarios_and_requirements() {
    let cases = cases();
    assert!(
        cases.len() >= MIN_SCENARIOS,
        "{} scenarios, fewer than {MIN_SCENARIOS}",
        cases.len()
    );
    let requirements = catalogue::requirements().len();
    assert!(
        requirements >= MIN_REQUIREMENTS,
        "{requirements} requirements, fewer than {MIN_REQUIREMENTS}"
    );
}

#[test]
fn every_step_matches_exactly_one_pattern_of_the_vocabulary() {
    let vocabulary = Vocabulary::from_catalogue();
    let mut failures = Vec::new();
    for case in cases() {
        for step in &case.steps {
            match vocabulary.matching(step)[..] {
                [_] => {}
                [] => failures.push(format!(
                    "{}: {step:?} matches no pattern of the step vocabulary",
                    case.at()
                )),
                ref several => failures.push(format!(
                    "{}: {step:?} matches several patterns: {several:?}",
                    case.at()
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_pattern_of_the_vocabulary_is_used_and_there_are_few() {
    let vocabulary = Vocabulary::from_catalogue();
    let steps: Vec<String> = cases().into_iter().flat_map(|c| c.steps).collect();
    let mut seen = BTreeSet::new();
    for (pattern, pieces) in &vocabulary.patterns {
        assert!(
            seen.insert(*pattern),
            "the vocabulary lists {pattern:?} twice"
        );
        assert!(
            steps.iter().any(|s| matches(pieces, s)),
            "no step uses {pattern:?}"
        );
    }
    assert!(
        vocabulary.patterns.len() <= MAX_PATTERNS,
        "{} step patterns: keep the vocabulary at {MAX_PATTERNS} or fewer",
        vocabulary.patterns.len()
    );
}

#[test]
fn the_matcher_reads_placeholders() {
    let choices: BTreeMap<&str, Vec<&'static str>> = [
        ("user", vec!["alice", "bob"]),
        ("receiver", vec!["<user>", "each of <user>'s connections"]),
    ]
    .into_iter()
    .collect();
    let pattern = compile(
        r#"Then <receiver> receives <n> runs and "<text>""#,
        &choices,
        0,
    );
    assert!(matches(&pattern, r#"Then alice receives 2 runs and "x""#));
    assert!(matches(
        &pattern,
        r#"Then each of bob's connections receives 12 runs and "{"a": "b"}""#
    ));
    assert!(matches(&pattern, r#"Then bob receives 0 runs and """#));
    assert!(!matches(&pattern, r#"Then carol receives 2 runs and "x""#));
    assert!(!matches(
        &pattern,
        r#"Then alice receives two runs and "x""#
    ));
    assert!(!matches(
        &pattern,
        r#"Then alice receives 2 runs and "x" more"#
    ));
    assert!(!matches(&pattern, r#"Then alice receives 2 runs and x"#));
}
