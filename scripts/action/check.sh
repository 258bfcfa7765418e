#!/usr/bin/env bash
# Check the deployment and write every report to OUT_DIR: goldenpath-report.json (.xml, .html),
# the Markdown summary appended to GITHUB_STEP_SUMMARY, and the signed attestation
# goldenpath-report.intoto.json when SIGNING_KEY (PKCS#8 PEM text) is given. Never fails the
# step: the exit code of `goldenpath check` goes to GITHUB_OUTPUT as exit-code (and to stdout's
# last line), so that the reports are uploaded before the job fails.
# Inputs (environment): URL, TOKEN_URL, TOKEN_FILE (JSON text), GOLDENPATH_JWT_SECRET, CLAIMS,
# DIALECT, TAGS, ONLY, STRICT, TIMEOUT, BASELINE_FILE, SIGNING_KEY, OUT_DIR, RUNNER_TEMP,
# GITHUB_STEP_SUMMARY, GITHUB_OUTPUT.
set -uo pipefail
out=${OUT_DIR:?}
tmp=$(mktemp -d "${RUNNER_TEMP:-/tmp}/goldenpath.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
args=(check --url "${URL:?}" --dialect "${DIALECT:-canonical}" --timeout "${TIMEOUT:-5}"
  --json "$out/goldenpath-report.json" --junit "$out/goldenpath-report.xml"
  --html "$out/goldenpath-report.html")
[ -n "${GITHUB_STEP_SUMMARY:-}" ] && args+=(--summary-md "$GITHUB_STEP_SUMMARY")
if [ -n "${TOKEN_URL:-}" ]; then
  args+=(--token-url "$TOKEN_URL")
elif [ -n "${TOKEN_FILE:-}" ]; then
  (umask 077 && printf '%s' "$TOKEN_FILE" > "$tmp/tokens.json")
  args+=(--token-file "$tmp/tokens.json")
elif [ -z "${GOLDENPATH_JWT_SECRET:-}" ]; then
  echo "give jwt-secret, token-file or token-url" >&2
  code=2
fi
for c in ${CLAIMS:-}; do args+=(--jwt-claim "$c"); done
for o in ${ONLY:-}; do args+=(--only "$o"); done
[ -n "${TAGS:-}" ] && args+=(--tags "$TAGS")
[ "${STRICT:-false}" = "true" ] && args+=(--strict)
[ -n "${BASELINE_FILE:-}" ] && args+=(--baseline "$BASELINE_FILE")
if [ -n "${SIGNING_KEY:-}" ]; then
  (umask 077 && printf '%s\n' "$SIGNING_KEY" > "$tmp/signing-key.pem")
  args+=(--attest "$out/goldenpath-report.intoto.json" --signing-key "$tmp/signing-key.pem")
fi
if [ -z "${code:-}" ]; then
  goldenpath "${args[@]}"
  code=$?
fi
[ -n "${GITHUB_OUTPUT:-}" ] && echo "exit-code=$code" >> "$GITHUB_OUTPUT"
echo "exit-code=$code"
exit 0
