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
//!
//! One module each: the statement and what fills it (`statement.rs`), the envelope, signing
//! and verifying (`envelope.rs`), the key files (`keys.rs`).

mod envelope;
mod keys;
mod statement;

pub use envelope::{Envelope, EnvelopeSignature, SignError, VerifyError, key_id, sign, verify};
pub use keys::{KeyError, generate_key, public_path, read_public_key, read_signing_key};
pub use statement::{
    Completeness, Conformance, DialectRef, RequirementVerdict, RunFacts, Runner, SelectionRef,
    SpecDigest, Statement, Subject, TargetRef, completeness, runner, sha256_hex, spec_digest,
    statement,
};

/// The DSSE payload type of an in-toto statement.
pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto Statement v1 type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The predicate type of a goldenpath conformance statement.
pub const PREDICATE_TYPE: &str = "https://example.invalid/goldenpath/attestation/conformance/v1";
/// The subject's name when the report was not written to a file.
pub const REPORT_SUBJECT: &str = "goldenpath-report.json";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Report;
    use ed25519_dalek::SigningKey;

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
