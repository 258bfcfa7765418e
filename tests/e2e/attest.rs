//! `check --attest`, `keygen` and `verify`: a signed statement that verifies offline and fails
//! after any edit.

use crate::common::{goldenpath, scratch};
use std::path::Path;

const DOCS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/attestation");

#[tokio::test]
async fn the_committed_sample_verifies() {
    let docs = Path::new(DOCS);
    let key = goldenpath::attest::read_public_key(&docs.join("sample.pub")).unwrap();
    let text = std::fs::read(docs.join("sample.intoto.json")).unwrap();
    let statement = goldenpath::attest::verify(&text, &key).unwrap();
    let p = &statement.predicate;
    assert_eq!(p.runner.name, "goldenpath");
    assert_eq!(p.target.url, "the embedded reference router");
    assert_eq!(p.target.dialect.name, "canonical");
    assert!(p.conformant && p.complete.complete, "{p:?}");
    let (code, out, err) = goldenpath(&[
        "verify",
        &format!("{DOCS}/sample.intoto.json"),
        "--public-key",
        &format!("{DOCS}/sample.pub"),
        "--report",
        &format!("{DOCS}/sample-report.json"),
    ])
    .await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.starts_with("verified: signed by keyid "), "{out}");
}

#[tokio::test]
async fn an_attestation_verifies_and_fails_after_a_one_byte_edit() {
    let dir = scratch("attest");
    let key = dir.join("k");
    let public = dir.join("k.pub");
    let attestation = dir.join("a.json");
    let report = dir.join("report.json");
    let (code, out, err) = goldenpath(&["keygen", key.to_str().unwrap()]).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    let secret = std::fs::read_to_string(&key).unwrap();
    assert!(secret.starts_with("-----BEGIN PRIVATE KEY-----"));
    let (code, out, err) = goldenpath(&[
        "check",
        "--only",
        "GP-AUTH",
        "--json",
        report.to_str().unwrap(),
        "--attest",
        attestation.to_str().unwrap(),
        "--signing-key",
        key.to_str().unwrap(),
    ])
    .await;
    // Narrowed by --only: PARTIAL (exit 5), and the statement says so.
    assert_eq!(code, 5, "stdout:\n{out}\nstderr:\n{err}");
    let body = secret.lines().nth(1).unwrap();
    assert!(
        !out.contains(body) && !err.contains(body),
        "the key was printed"
    );
    let verify = |file: &Path| {
        let args = [
            "verify".to_owned(),
            file.to_str().unwrap().to_owned(),
            "--public-key".to_owned(),
            public.to_str().unwrap().to_owned(),
            "--report".to_owned(),
            report.to_str().unwrap().to_owned(),
        ];
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            goldenpath(&args).await
        }
    };
    let (code, out, err) = verify(&attestation).await;
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("incomplete"),
        "only GP-AUTH was selected: {out}"
    );
    assert!(
        out.contains("\"only\": [\n        \"GP-AUTH\"\n      ]"),
        "{out}"
    );

    // One byte changed anywhere (here: in the payload, the signature, the keyid, the type and
    // the layout) fails with a reason.
    let text = std::fs::read(&attestation).unwrap();
    let find = |needle: &str| {
        text.windows(needle.len())
            .position(|w| w == needle.as_bytes())
            .unwrap()
    };
    let edited = dir.join("edited.json");
    for (at, byte, reason) in [
        (
            find("\"payload\": \"") + 40,
            None,
            "signature does not match",
        ),
        (find("\"sig\": \"") + 10, None, "signature does not match"),
        (find("\"keyid\": \"") + 12, None, "another key signed it"),
        (find("in-toto"), None, "payloadType"),
        (2, Some(b'\t'), "edited after signing"),
        (0, None, "not a DSSE envelope"),
    ] {
        let mut bytes = text.clone();
        bytes[at] = byte.unwrap_or(bytes[at] ^ 0x01);
        std::fs::write(&edited, &bytes).unwrap();
        let (code, out, err) = verify(&edited).await;
        assert_eq!(
            code, 1,
            "an edit of byte {at}: stdout:\n{out}\nstderr:\n{err}"
        );
        assert!(
            err.contains("NOT VERIFIED") && err.contains(reason),
            "byte {at}: {err}"
        );
    }

    // The report is bound too.
    let mut bytes = std::fs::read(&report).unwrap();
    bytes[3] ^= 0x01;
    std::fs::write(&report, &bytes).unwrap();
    let (code, _, err) = verify(&attestation).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is not the certified report's"), "{err}");
}
