#!/usr/bin/env bash
# Find the baseline report to compare with, and print its path on stdout (nothing: no
# baseline). Either a committed file (BASELINE, a path in the repository) or the JSON report
# of the last successful run of this workflow on this branch (BASELINE_FROM_LAST_RUN=true),
# downloaded from its artifact REPORT_NAME with the GitHub CLI.
# Inputs (environment): BASELINE, BASELINE_FROM_LAST_RUN, REPORT_NAME, GH_TOKEN,
# GITHUB_REPOSITORY, GITHUB_WORKFLOW, GITHUB_REF_NAME, GITHUB_HEAD_REF, RUNNER_TEMP.
set -euo pipefail
if [ -n "${BASELINE:-}" ]; then
  [ -f "$BASELINE" ] || { echo "baseline: $BASELINE does not exist" >&2; exit 2; }
  echo "$BASELINE"
  exit 0
fi
[ "${BASELINE_FROM_LAST_RUN:-false}" = "true" ] || exit 0
branch=${GITHUB_HEAD_REF:-${GITHUB_REF_NAME:-}}
run=$(gh run list --repo "$GITHUB_REPOSITORY" --workflow "$GITHUB_WORKFLOW" --branch "$branch" \
  --status success --limit 1 --json databaseId --jq '.[0].databaseId // empty' 2>/dev/null || true)
if [ -z "$run" ]; then
  echo "baseline: no successful run of $GITHUB_WORKFLOW on $branch yet; checking without one" >&2
  exit 0
fi
dir="${RUNNER_TEMP:-/tmp}/goldenpath-baseline-$REPORT_NAME"
if gh run download "$run" --repo "$GITHUB_REPOSITORY" --name "$REPORT_NAME" --dir "$dir" >&2 &&
  [ -f "$dir/goldenpath-report.json" ]; then
  echo "$dir/goldenpath-report.json"
else
  echo "baseline: run $run has no artifact $REPORT_NAME; checking without one" >&2
fi
