//! Signed certification of a run that a third party can check offline: an
//! [in-toto Statement v1](https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md)
//! in a [DSSE envelope](https://github.com/secure-systems-lab/dsse/blob/master/envelope.md),
//! signed with Ed25519.
//!
//! - The statement's subject is the run's JSON report (`--json`), by SHA-256: whoever holds the
//!   report can check that it is the one certified.
//! - Its predicate ([`Conformance`], type [`PREDICATE_TYPE`]) says who ran what against whom:
//!   the runner's version and commit, the spec version and the SHA-256 of the embedded schemas,
//!   features and requirement table, the target and its dialect (with the dialect file's hash),
//!   the selection, whether every MUST was checked, each requirement's verdict, and when.
//! - The envelope is signed over DSSE's pre-authentication encoding of the payload; the
//!   signature's `keyid` is the hex SHA-256 of the 32-byte Ed25519 public key.
//!
//! Key files are the formats other tools read: the signing key is PKCS#8 PEM
//! (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey -algorithm ed25519` writes), the public
//! key SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout`
//! writes). [`generate_key`] makes a pair. A signing key is never printed or logged.
//!
//! [`verify`] fails on any change to the file, byte for byte: a payload or signature edit breaks
//! the signature, an edit of the unsigned `keyid` names another key, and any other edit
//! (whitespace included) leaves the file in a form [`sign`] never writes.

use crate::report::{Report, Totals, Verdict};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto Statement v1 type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of a goldenpath conformance statement.
pub const PREDICATE_TYPE: &str = "https://example.invalid/goldenpath/attestation/conformance/v1";
/// The subject's name when the report was not written to a file.
pub const REPORT_SUBJECT: &str = "goldenpath-report.json";

/// A DSSE envelope, as written to the `--attest` file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always [`PAYLOAD_TYPE`].
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The statement's JSON, base64 (standard alphabet, padded).
    pub payload: String,
    /// The signatures over the payload's pre-authentication encoding.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// The signer's key: the hex SHA-256 of its 32-byte Ed25519 public key ([`key_id`]).
    pub keyid: String,
    /// The 64-byte Ed25519 signature, base64.
    pub sig: String,
}

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

/// Why a key could not be read, written or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written; check the path and its permissions.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a key of the expected kind; the message says what was expected.
    #[error("{path}: {problem}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// A key file already exists; remove it or choose another path.
    #[error("{0} exists; not overwriting a key")]
    Exists(String),
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
}

/// Why an attestation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The statement could not be serialized (a bug).
    #[error("cannot serialize the statement: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Why an attestation did not verify. Each variant says what was changed or is missing.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The file is not a DSSE envelope as JSON.
    #[error("not a DSSE envelope: {0}")]
    Envelope(serde_json::Error),
    /// The envelope's payload type is not an in-toto statement's.
    #[error("payloadType is {found:?}, expected {PAYLOAD_TYPE:?}")]
    PayloadType {
        /// What the envelope says.
        found: String,
    },
    /// No signature names the given public key.
    #[error(
        "no signature by the given public key (keyid {expected}); the envelope names {found:?}: another key signed it, or its keyid was edited"
    )]
    KeyMismatch {
        /// The given key's id.
        expected: String,
        /// The key ids the envelope names.
        found: Vec<String>,
    },
    /// A field is not valid base64.
    #[error("{field} is not valid base64 ({problem}): it was edited after signing")]
    Base64 {
        /// `payload` or `signatures[].sig`.
        field: &'static str,
        /// The decoder's complaint.
        problem: String,
    },
    /// The signature does not match the payload.
    #[error(
        "the signature does not match the statement: the payload, its type or the signature was changed after signing"
    )]
    BadSignature,
    /// The file differs from the envelope as signed.
    #[error(
        "byte {offset} differs from the envelope as it was written when signed: the file was edited after signing"
    )]
    Edited {
        /// The first differing byte, from 0.
        offset: usize,
    },
    /// The signed payload is not a goldenpath conformance statement.
    #[error("the signed payload is not a goldenpath conformance statement: {0}")]
    Statement(String),
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

/// DSSE's pre-authentication encoding: `DSSEv1 <len type> <type> <len body> <body>`.
fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The key id of a public key: the hex SHA-256 of its 32 bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes())
}

/// Sign `statement` into an envelope, returned as the exact text of an `--attest` file.
pub fn sign(statement: &Statement, key: &SigningKey) -> Result<String, SignError> {
    let payload = serde_json::to_vec(statement)?;
    let signature = key.sign(&pae(PAYLOAD_TYPE, &payload));
    let envelope = Envelope {
        payload_type: PAYLOAD_TYPE.to_owned(),
        payload: B64.encode(&payload),
        signatures: vec![EnvelopeSignature {
            keyid: key_id(&key.verifying_key()),
            sig: B64.encode(signature.to_bytes()),
        }],
    };
    Ok(envelope_text(&envelope)?)
}

/// The one form [`sign`] writes an envelope in: pretty JSON and a newline.
fn envelope_text(envelope: &Envelope) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(envelope)? + "\n")
}

/// Check an `--attest` file's text against a public key and return the statement it certifies.
pub fn verify(text: &[u8], key: &VerifyingKey) -> Result<Statement, VerifyError> {
    let envelope: Envelope = serde_json::from_slice(text).map_err(VerifyError::Envelope)?;
    if envelope.payload_type != PAYLOAD_TYPE {
        return Err(VerifyError::PayloadType {
            found: envelope.payload_type,
        });
    }
    let id = key_id(key);
    let Some(signature) = envelope.signatures.iter().find(|s| s.keyid == id) else {
        return Err(VerifyError::KeyMismatch {
            expected: id,
            found: envelope
                .signatures
                .iter()
                .map(|s| s.keyid.clone())
                .collect(),
        });
    };
    let payload = B64
        .decode(&envelope.payload)
        .map_err(|e| VerifyError::Base64 {
            field: "payload",
            problem: e.to_string(),
        })?;
    let sig = B64
        .decode(&signature.sig)
        .map_err(|e| VerifyError::Base64 {
            field: "signatures[].sig",
            problem: e.to_string(),
        })?;
    let sig = ed25519_dalek::Signature::from_slice(&sig).map_err(|_| VerifyError::BadSignature)?;
    key.verify_strict(&pae(&envelope.payload_type, &payload), &sig)
        .map_err(|_| VerifyError::BadSignature)?;
    let canonical = envelope_text(&envelope).map_err(VerifyError::Envelope)?;
    if canonical.as_bytes() != text {
        let offset = canonical
            .bytes()
            .zip(text.iter())
            .position(|(a, b)| a != *b)
            .unwrap_or(canonical.len().min(text.len()));
        return Err(VerifyError::Edited { offset });
    }
    let statement: Statement =
        serde_json::from_slice(&payload).map_err(|e| VerifyError::Statement(e.to_string()))?;
    if statement.statement_type != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE {
        return Err(VerifyError::Statement(format!(
            "_type {:?}, predicateType {:?}",
            statement.statement_type, statement.predicate_type
        )));
    }
    Ok(statement)
}

/// A PEM file's text, with CRLF line ends and surrounding blank lines (as a CI secret often
/// has them) normalised away.
fn read(path: &Path) -> Result<String, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(text.replace("\r\n", "\n").trim().to_owned() + "\n")
}

/// Read a signing key: a PKCS#8 PEM file (`-----BEGIN PRIVATE KEY-----`) holding an Ed25519
/// key. The error never quotes the file.
pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(&read(path)?).map_err(|_| KeyError::Format {
        path: path.display().to_string(),
        problem: "not an Ed25519 private key in PKCS#8 PEM (-----BEGIN PRIVATE KEY-----; make one with `goldenpath keygen`)".to_owned(),
    })
}

/// Read a public key: a SubjectPublicKeyInfo PEM file (`-----BEGIN PUBLIC KEY-----`) holding
/// an Ed25519 key.
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(&read(path)?).map_err(|e| KeyError::Format {
        path: path.display().to_string(),
        problem: format!(
            "not an Ed25519 public key in SubjectPublicKeyInfo PEM (-----BEGIN PUBLIC KEY-----): {e}"
        ),
    })
}

/// Make a key pair from the operating system's randomness and write it: the signing key to
/// `path` (PKCS#8 PEM, owner-only permissions on Unix) and the public key to `path.pub`
/// (SubjectPublicKeyInfo PEM). Refuses to overwrite either. Returns the public key.
pub fn generate_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let public_path = public_path(path);
    for p in [path, public_path.as_path()] {
        if p.exists() {
            return Err(KeyError::Exists(p.display().to_string()));
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    let format = |path: &Path, e: &dyn std::fmt::Display| KeyError::Format {
        path: path.display().to_string(),
        problem: format!("cannot encode the key: {e}"),
    };
    // PKCS#8 v1 (the seed alone), as `openssl genpkey` writes: OpenSSL 3.0 reads no v2.
    let private = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: seed,
        public_key: None,
    }
    .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
    .map_err(|e| format(path, &e))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| format(&public_path, &e))?;
    write_private(path, private.as_bytes())?;
    std::fs::write(&public_path, public).map_err(|source| KeyError::Io {
        path: public_path.display().to_string(),
        source,
    })?;
    Ok(key.verifying_key())
}

/// Where [`generate_key`] writes the public key of `path`: `path.pub`.
pub fn public_path(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    p.into()
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::io::Write as _;
    let io = |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.write_all(bytes).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Statement, SigningKey) {
        let report = Report::build("embedded reference".into(), false, 1.0, Vec::new());
        let facts = RunFacts {
            report_name: REPORT_SUBJECT.into(),
            dialect: DialectRef {
                name: "canonical".into(),
                origin: "built-in canonical".into(),
                sha256: sha256_hex(b""),
            },
            selection: SelectionRef::default(),
            started: time::OffsetDateTime::UNIX_EPOCH,
            finished: time::OffsetDateTime::UNIX_EPOCH,
        };
        (
            statement(&report, "{}", &facts),
            SigningKey::from_bytes(&[7; 32]),
        )
    }

    #[test]
    fn a_signed_statement_verifies_and_any_byte_edit_fails() {
        let (statement, key) = sample();
        let text = sign(&statement, &key).unwrap();
        assert_eq!(
            verify(text.as_bytes(), &key.verifying_key()).unwrap(),
            statement
        );
        let mut bytes = text.into_bytes();
        for i in 0..bytes.len() {
            let original = bytes[i];
            bytes[i] ^= 0x01;
            assert!(
                verify(&bytes, &key.verifying_key()).is_err(),
                "an edit of byte {i} verified"
            );
            bytes[i] = original;
        }
    }

    #[test]
    fn another_key_is_named_as_such() {
        let (statement, key) = sample();
        let text = sign(&statement, &key).unwrap();
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        let err = verify(text.as_bytes(), &other).unwrap_err();
        assert!(matches!(err, VerifyError::KeyMismatch { .. }), "{err}");
    }

    #[test]
    fn an_empty_report_is_incomplete() {
        let (statement, _) = sample();
        assert!(!statement.predicate.complete.complete);
        assert!(!statement.predicate.complete.unchecked_musts.is_empty());
    }
}
