//! Embeds every `features/*.feature`, in the order of the families table of
//! `features/README.md`: a new feature file needs no code, only its row in that table.

use std::path::Path;
use std::{env, fs};

include!("src/discover.rs");

fn main() {
    let manifest = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let features = Path::new(&manifest).join("../features");
    let readme = features.join("README.md");
    println!("cargo:rerun-if-changed={}", features.display());
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = fs::read_to_string(&readme).unwrap_or_else(|e| panic!("{}: {e}", readme.display()));
    let files = discover_features(&features, &text)
        .unwrap_or_else(|e| panic!("{}: {e}", features.display()));
    let mut out = String::from("&[\n");
    for name in files {
        let path = features.join(&name);
        let path = path.to_str().expect("a UTF-8 path to features/");
        out.push_str(&format!("    ({name:?}, include_str!({path:?})),\n"));
    }
    out.push_str("]\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("features.rs");
    fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}
