//! Packaging facts that drift unless checked: the minimum Rust version (Cargo.toml's
//! `rust-version`) is the highest any locked dependency declares and is the one the README
//! states; the container's build stage runs the release workflow's build command.

use std::path::Path;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap()
}

fn version(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap()).collect()
}

#[test]
fn the_rust_version_is_what_the_lockfile_needs_and_what_the_readme_says() {
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(ROOT)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let members = meta["workspace_members"].as_array().unwrap();
    let (needed, by) = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !members.contains(&p["id"]))
        .filter_map(|p| {
            let v = p["rust_version"].as_str()?;
            Some((version(v), format!("{} {}", p["name"], p["version"])))
        })
        .max()
        .unwrap();
    let declared = env!("CARGO_PKG_RUST_VERSION");
    let mut declared_v = version(declared);
    declared_v.resize(needed.len(), 0);
    assert_eq!(
        declared_v, needed,
        "rust-version {declared} is not what the lockfile needs ({by} declares {needed:?})"
    );
    assert!(
        read("README.md").contains(&format!("Rust toolchain ({declared} or later)")),
        "the README names another minimum than {declared}"
    );
}

#[test]
fn the_container_builds_with_the_release_command() {
    let command = "cargo build --release --locked -p goldenpath";
    assert!(read("Dockerfile").contains(&format!("\nRUN {command}\n")));
    assert!(read(".github/workflows/release.yml").contains(&format!("run: {command}\n")));
}
