//! The in-toto statement about a run: its subject (the report, by SHA-256) and its
//! [`Conformance`] predicate, and the hashes and facts that fill it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{PREDICATE_TYPE, STATEMENT_TYPE};
use crate::report::{Report, Totals, Verdict};

/// An in-toto Statement v1 about a conformance run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Statement {
    /// Always [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// The JSON report of the run.
    pub subject: Vec<Subject>,
    /// Always [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// What the run found.
    pub predicate: Conformance,
}

/// An artifact a statement is about, named and hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// Its name, e.g. `report.json`.
    pub name: String,
    /// Its digests by algorithm: `sha256` → lowercase hex.
    pub digest: BTreeMap<String, String>,
}

/// The predicate: a conformance run, certified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conformance {
    /// The runner that ran it.
    pub runner: Runner,
    /// The spec it checked against.
    pub spec: SpecDigest,
    /// The server checked.
    pub target: TargetRef,
    /// Which scenarios ran.
    pub selection: SelectionRef,
    /// Whether every MUST of the spec was judged.
    pub complete: Completeness,
    /// Whether the run may say CONFORMANT: every MUST of the spec ran and passed.
    pub conformant: bool,
    /// The run's state: `conformant`, `not-conformant`, `inconclusive`, `incomplete` or
    /// `partial` (absent in statements from runners before the state existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<crate::RunState>,
    /// Requirements by verdict.
    pub totals: Totals,
    /// Each requirement's verdict, in catalogue order.
    pub requirements: Vec<RequirementVerdict>,
    /// When the run started, RFC 3339 UTC.
    pub started: String,
    /// When it ended, RFC 3339 UTC.
    pub finished: String,
    /// How many agent runs the check started on the target (`null` in statements from runners
    /// that did not count them).
    pub agent_runs: Option<u64>,
}

/// The runner's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runner {
    /// `goldenpath`.
    pub name: String,
    /// The crate version.
    pub version: String,
    /// The git commit it was built from (`unknown` when built outside a clone without
    /// `GOLDENPATH_COMMIT` set).
    pub commit: String,
}

/// The spec version and the SHA-256 of what the runner embeds ([`spec_digest`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecDigest {
    /// The spec version.
    pub version: String,
    /// SHA-256 over the schema files (`schemas/`).
    pub schemas_sha256: String,
    /// SHA-256 over the feature files, `sequence.toml` and `limits.toml`.
    pub features_sha256: String,
    /// SHA-256 of the requirement catalogue, `features/README.md`.
    pub requirements_sha256: String,
}

/// The target and the dialect it was spoken to in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetRef {
    /// Its URL (secrets redacted), or `embedded reference`.
    pub url: String,
    /// The dialect.
    pub dialect: DialectRef,
}

/// A dialect, named and hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialectRef {
    /// Its name, e.g. `canonical`.
    pub name: String,
    /// `built-in NAME` or the file's path.
    pub origin: String,
    /// SHA-256 of its TOML text.
    pub sha256: String,
}

/// The selection, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionRef {
    /// `--tags`, when given.
    pub tags: Option<String>,
    /// `--only` prefixes.
    pub only: Vec<String>,
    /// `--strict`: SHOULDs counted as failures.
    pub strict: bool,
}

/// Whether the run judged every MUST of the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completeness {
    /// True when no MUST is left unchecked.
    pub complete: bool,
    /// The MUSTs the run did not judge pass or fail: skipped, errored, or not selected.
    pub unchecked_musts: Vec<String>,
}

/// One requirement's verdict, as certified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequirementVerdict {
    /// The id, `GP-<FAMILY>-NNN`.
    pub id: String,
    /// `MUST` or `SHOULD`.
    pub level: String,
    /// The verdict.
    pub verdict: Verdict,
}

/// What the run was, beyond the report: the facts [`statement`] certifies.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// The name of the JSON report file the statement's subject names.
    pub report_name: String,
    /// The dialect.
    pub dialect: DialectRef,
    /// The selection.
    pub selection: SelectionRef,
    /// When the run started.
    pub started: time::OffsetDateTime,
    /// When it ended.
    pub finished: time::OffsetDateTime,
}

/// The runner's identity: this crate's version and the commit it was built from.
pub fn runner() -> Runner {
    Runner {
        name: "goldenpath".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        commit: env!("GOLDENPATH_COMMIT").to_owned(),
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 over named files: for each, its name, a newline, its length in bytes in decimal, a
/// newline, then its bytes.
fn files_sha256<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut h = Sha256::new();
    for (name, text) in files {
        h.update(name.as_bytes());
        h.update(format!("\n{}\n", text.len()).as_bytes());
        h.update(text.as_bytes());
    }
    hex(&h.finalize())
}

/// The spec this runner embeds, hashed: schemas over `schemas/` in embedding order, features
/// over the feature files then `sequence.toml` and `limits.toml`, each as [`files_sha256`]
/// frames them, and the requirement catalogue's text.
pub fn spec_digest() -> SpecDigest {
    let features = goldenpath_spec::catalogue::FEATURE_FILES
        .iter()
        .copied()
        .chain([
            ("sequence.toml", goldenpath_spec::machine::SEQUENCE_TOML),
            ("limits.toml", goldenpath_spec::limits::LIMITS),
        ]);
    SpecDigest {
        version: goldenpath_spec::SPEC_VERSION.to_owned(),
        schemas_sha256: files_sha256(goldenpath_spec::schema::FILES.iter().copied()),
        features_sha256: files_sha256(features),
        requirements_sha256: sha256_hex(goldenpath_spec::catalogue::CATALOGUE.as_bytes()),
    }
}

/// Which MUSTs of the catalogue the report leaves unjudged: those it lists as unchecked
/// (skipped or errored) and those the selection left out. `complete` is the report's own.
pub fn completeness(report: &Report) -> Completeness {
    let unchecked_musts: Vec<String> = goldenpath_spec::catalogue::requirements()
        .iter()
        .filter(|r| r.level == goldenpath_spec::catalogue::Level::Must)
        .filter(|r| {
            report.unchecked.iter().any(|u| u.id == r.id)
                || !report.requirements.iter().any(|got| got.id == r.id)
        })
        .map(|r| r.id.to_owned())
        .collect();
    Completeness {
        complete: report.complete && unchecked_musts.is_empty(),
        unchecked_musts,
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The statement certifying `report`, whose JSON form (as `--json` writes it) is `report_json`.
pub fn statement(report: &Report, report_json: &str, facts: &RunFacts) -> Statement {
    Statement {
        statement_type: STATEMENT_TYPE.to_owned(),
        subject: vec![Subject {
            name: facts.report_name.clone(),
            digest: BTreeMap::from([("sha256".to_owned(), sha256_hex(report_json.as_bytes()))]),
        }],
        predicate_type: PREDICATE_TYPE.to_owned(),
        predicate: Conformance {
            runner: runner(),
            spec: spec_digest(),
            target: TargetRef {
                url: report.target.clone(),
                dialect: facts.dialect.clone(),
            },
            selection: facts.selection.clone(),
            complete: completeness(report),
            conformant: report.conformant(),
            state: Some(report.state),
            totals: report.totals.clone(),
            requirements: report
                .requirements
                .iter()
                .map(|r| RequirementVerdict {
                    id: r.id.clone(),
                    level: r.level.clone(),
                    verdict: r.verdict,
                })
                .collect(),
            started: rfc3339(facts.started),
            finished: rfc3339(facts.finished),
            agent_runs: Some(report.agent_runs),
        },
    }
}
