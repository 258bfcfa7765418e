//! The key files: reading a PKCS#8 signing key and a SubjectPublicKeyInfo public key (PEM),
//! and making a pair.

use std::path::Path;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

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
