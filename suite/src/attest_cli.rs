//! `goldenpath keygen` and `goldenpath verify`: make a signing key pair, and check an
//! attestation offline.

use clap::Args;
use goldenpath::attest;
use std::path::PathBuf;
use std::process::ExitCode;

/// `goldenpath keygen PATH`.
#[derive(Debug, Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the signing key (PKCS#8 PEM, owner-only); the public key goes to
    /// PATH.pub (SubjectPublicKeyInfo PEM). Existing files are never overwritten.
    #[arg(value_name = "PATH")]
    path: PathBuf,
}

/// `goldenpath verify FILE --public-key KEY`.
#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The attestation, as `check --attest` wrote it.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The signer's public key (SubjectPublicKeyInfo PEM, e.g. the .pub `keygen` wrote).
    #[arg(long, value_name = "KEY")]
    public_key: PathBuf,
    /// Also check that this JSON report is the one the statement certifies (its subject).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

pub(crate) fn keygen(args: KeygenArgs) -> ExitCode {
    match attest::generate_key(&args.path) {
        Ok(public) => {
            println!(
                "wrote {} (signing key: keep it secret) and {} (public key)\nkeyid {}",
                args.path.display(),
                attest::public_path(&args.path).display(),
                attest::key_id(&public)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("goldenpath keygen: {e}");
            ExitCode::from(2)
        }
    }
}

pub(crate) fn verify(args: VerifyArgs) -> ExitCode {
    let key = match attest::read_public_key(&args.public_key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("goldenpath verify: --public-key {e}");
            return ExitCode::from(2);
        }
    };
    let text = match std::fs::read(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("goldenpath verify: {}: {e}", args.file.display());
            return ExitCode::from(2);
        }
    };
    let statement = match attest::verify(&text, &key) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "goldenpath verify: {}: NOT VERIFIED: {e}",
                args.file.display()
            );
            return ExitCode::from(1);
        }
    };
    if let Some(report) = &args.report {
        let digest = match std::fs::read(report) {
            Ok(bytes) => attest::sha256_hex(&bytes),
            Err(e) => {
                eprintln!("goldenpath verify: {}: {e}", report.display());
                return ExitCode::from(2);
            }
        };
        if !statement
            .subject
            .iter()
            .any(|s| s.digest.get("sha256") == Some(&digest))
        {
            eprintln!(
                "goldenpath verify: {}: NOT VERIFIED: its SHA-256 {digest} is not the certified report's",
                report.display()
            );
            return ExitCode::from(1);
        }
    }
    let p = &statement.predicate;
    println!(
        "verified: signed by keyid {}\n{} {} (commit {}) checked {} via {} against spec v{}: {}{}",
        attest::key_id(&key),
        p.runner.name,
        p.runner.version,
        p.runner.commit,
        p.target.url,
        p.target.dialect.name,
        p.spec.version,
        if p.conformant {
            "conformant"
        } else {
            "NOT conformant"
        },
        if p.complete.complete {
            String::new()
        } else {
            format!(
                " (incomplete: {} MUSTs unchecked)",
                p.complete.unchecked_musts.len()
            )
        },
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&statement).expect("a statement serializes")
    );
    ExitCode::SUCCESS
}
