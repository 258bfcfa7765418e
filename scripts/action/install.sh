#!/usr/bin/env bash
# Put `goldenpath` VERSION on PATH, as cheaply as possible:
#   1. already there at that version (a cache hit, or a runner image that has it): nothing;
#   2. a prebuilt binary of the release VERSION of REPOSITORY (the release workflow's assets);
#   3. `cargo install --locked` from REPOSITORY at VERSION (a tag or commit): a source build,
#      only when no binary exists for this platform.
# Inputs (environment): GOLDENPATH_VERSION (e.g. v0.1.0; empty: whatever is on PATH),
# GOLDENPATH_REPOSITORY (owner/name), GOLDENPATH_BIN_DIR (where to install; on PATH after),
# GH_TOKEN (to read releases), GITHUB_PATH (Actions' PATH file, optional).
set -euo pipefail
bin_dir=${GOLDENPATH_BIN_DIR:-$HOME/.goldenpath/bin}
version=${GOLDENPATH_VERSION:-}
repository=${GOLDENPATH_REPOSITORY:-}
mkdir -p "$bin_dir"
export PATH="$bin_dir:$PATH"
[ -n "${GITHUB_PATH:-}" ] && echo "$bin_dir" >> "$GITHUB_PATH"

installed() {
  command -v goldenpath >/dev/null || return 1
  [ -z "$version" ] && return 0
  # `goldenpath --version` prints "goldenpath X.Y.Z"; tags are vX.Y.Z.
  [ "v$(goldenpath --version | awk '{print $2}')" = "$version" ] || [ "$(goldenpath --version | awk '{print $2}')" = "$version" ]
}

if installed; then
  echo "goldenpath: $(goldenpath --version) already installed at $(command -v goldenpath)"
  exit 0
fi
[ -n "$repository" ] && [ -n "$version" ] || {
  echo "goldenpath is not installed, and no repository and version to install it from" >&2
  exit 2
}

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) target=x86_64-unknown-linux-gnu ;;
  Linux-aarch64 | Linux-arm64) target=aarch64-unknown-linux-gnu ;;
  Darwin-arm64) target=aarch64-apple-darwin ;;
  Darwin-x86_64) target=x86_64-apple-darwin ;;
  *) target="" ;;
esac
asset="goldenpath-$target.tar.gz"
if [ -n "$target" ] && command -v gh >/dev/null && tmp=$(mktemp -d) &&
  gh release download "$version" --repo "$repository" --pattern "$asset" --pattern "$asset.sha256" --dir "$tmp" 2>/dev/null; then
  (cd "$tmp" && if command -v sha256sum >/dev/null; then sha256sum -c "$asset.sha256"; else shasum -a 256 -c "$asset.sha256"; fi >/dev/null)
  tar -xzf "$tmp/$asset" -C "$bin_dir" goldenpath
  echo "goldenpath: installed the release binary $version ($target)"
else
  echo "goldenpath: no release binary of $version for this platform; building it with cargo install"
  # A tag (v1.2.3) or a commit.
  case "$version" in v[0-9]*) ref=(--tag "$version") ;; *) ref=(--rev "$version") ;; esac
  cargo install --locked --root "${bin_dir%/bin}" --git "https://github.com/$repository" "${ref[@]}" goldenpath
fi
installed
