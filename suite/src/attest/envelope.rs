//! The DSSE envelope: signing a statement into the exact text of an `--attest` file, and
//! verifying such a file against a public key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::statement::{Statement, sha256_hex};
use super::{PAYLOAD_TYPE, PREDICATE_TYPE, STATEMENT_TYPE};

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
