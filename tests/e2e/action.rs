//! The composite action's shell steps (action.yml runs scripts/action/*.sh), run here as the
//! action runs them, against the reference router: install (already on PATH), baseline (a
//! committed file), check (reports, job summary, signed attestation, exit code as an output).

use crate::common::{RUN_LIMIT, Reference, goldenpath, scratch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Run one of the action's scripts with `env`, as a step does: its exit code, stdout, stderr.
async fn step(script: &str, env: &BTreeMap<&str, String>) -> (i32, String, String) {
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(Path::new(ROOT).join("scripts/action").join(script))
        .current_dir(ROOT)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("GOLDENPATH_JWT_SECRET")
        .kill_on_drop(true);
    if let Some(v) = env.get("GOLDENPATH_JWT_SECRET") {
        command.env("GOLDENPATH_JWT_SECRET", v);
    }
    let out = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{script} ran over {RUN_LIMIT:?}"))
        .expect("bash runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_actions_steps_pass_against_the_reference() {
    // The steps action.yml runs, in its order.
    let action = std::fs::read_to_string(Path::new(ROOT).join("action.yml")).unwrap();
    let scripts: Vec<&str> = action
        .match_indices("scripts/action/")
        .map(|(at, _)| {
            let rest = &action[at + "scripts/action/".len()..];
            &rest[..rest.find(".sh").unwrap() + 3]
        })
        .filter(|s| !s.contains([' ', '*']))
        .collect();
    assert_eq!(scripts, ["install.sh", "baseline.sh", "check.sh"]);

    let reference = Reference::start("action-secret").await;
    let dir = scratch("action");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_goldenpath"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let temp = dir.join("runner-temp");
    std::fs::create_dir_all(&temp).unwrap();
    let mut env: BTreeMap<&str, String> = BTreeMap::from([
        ("PATH", path),
        ("HOME", dir.display().to_string()),
        ("RUNNER_TEMP", temp.display().to_string()),
        ("GITHUB_PATH", dir.join("github-path").display().to_string()),
        (
            "GITHUB_OUTPUT",
            dir.join("github-output").display().to_string(),
        ),
        (
            "GITHUB_STEP_SUMMARY",
            dir.join("step-summary.md").display().to_string(),
        ),
    ]);

    // Install: the runner of this version is on PATH already, so nothing is built.
    env.insert(
        "GOLDENPATH_VERSION",
        format!("v{}", env!("CARGO_PKG_VERSION")),
    );
    env.insert("GOLDENPATH_REPOSITORY", "owner/goldenpath".into());
    let (code, out, err) = step("install.sh", &env).await;
    assert_eq!(code, 0, "install.sh: stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("already installed"), "{out}");

    // Baseline: a committed report (here, one of the same selection written just now).
    let baseline = dir.join("baseline.json");
    // Of the same deployment, so that what it cannot check (no issuer or audience declared)
    // is the same on both sides.
    let ws = reference.ws();
    let (code, _, err) = goldenpath(&[
        "check",
        "--url",
        &ws,
        "--jwt-secret",
        "action-secret",
        "--only",
        "GP-AUTH",
        "--only",
        "GP-ROUTE",
        "--json",
        baseline.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 5, "narrowed by --only: PARTIAL\n{err}");
    env.insert("BASELINE", baseline.display().to_string());
    let (code, out, err) = step("baseline.sh", &env).await;
    assert_eq!(code, 0, "baseline.sh: stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.trim(), baseline.display().to_string());

    // Check, signing with a fresh key.
    let key = dir.join("key");
    let (code, _, err) = goldenpath(&["keygen", key.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    let out_dir = temp.join("goldenpath/goldenpath-report");
    env.extend([
        ("URL", reference.ws()),
        ("GOLDENPATH_JWT_SECRET", "action-secret".to_owned()),
        ("ONLY", "GP-AUTH GP-ROUTE".to_owned()),
        ("BASELINE_FILE", out.trim().to_owned()),
        ("SIGNING_KEY", std::fs::read_to_string(&key).unwrap()),
        ("OUT_DIR", out_dir.display().to_string()),
    ]);
    let (code, out, err) = step("check.sh", &env).await;
    assert_eq!(code, 0, "check.sh: stdout:\n{out}\nstderr:\n{err}");
    assert!(out.trim_end().ends_with("exit-code=0"), "{out}\n{err}");
    let output = std::fs::read_to_string(dir.join("github-output")).unwrap();
    assert_eq!(output, "exit-code=0\n");
    let summary = std::fs::read_to_string(dir.join("step-summary.md")).unwrap();
    assert!(
        // Narrowed by ONLY: PARTIAL.
        summary.contains("### goldenpath: PARTIAL") && summary.contains("no new failure"),
        "{summary}"
    );
    for file in [
        "goldenpath-report.json",
        "goldenpath-report.xml",
        "goldenpath-report.html",
        "goldenpath-report.intoto.json",
    ] {
        assert!(out_dir.join(file).is_file(), "{file} was not written");
    }
    let public = goldenpath::attest::read_public_key(&dir.join("key.pub")).unwrap();
    let statement = goldenpath::attest::verify(
        &std::fs::read(out_dir.join("goldenpath-report.intoto.json")).unwrap(),
        &public,
    )
    .unwrap();
    assert_eq!(
        statement.predicate.selection.only,
        ["GP-AUTH", "GP-ROUTE"],
        "{statement:?}"
    );
    // The key written for the check is gone with its temporary directory.
    let left: Vec<_> = std::fs::read_dir(&temp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "goldenpath")
        .collect();
    assert!(left.is_empty(), "left in RUNNER_TEMP: {left:?}");

    // A check that cannot start reports exit code 2 as the output and still passes the step.
    env.remove("GOLDENPATH_JWT_SECRET");
    std::fs::remove_file(dir.join("github-output")).unwrap();
    let (code, out, err) = step("check.sh", &env).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.trim_end().ends_with("exit-code=2"), "{out}\n{err}");
}
