#!/usr/bin/env bash
# The side-by-side bench, in one invocation (see BENCHMARKS.md):
#
#   bench/run.sh                 # 3 interleaved rounds, ~15 minutes on 2 cores
#   ROUNDS=1 QUICK=1 bench/run.sh   # one short round, to try the set-up (bench/results/quick/)
#   SCALE=1 bench/run.sh         # the scale-out bench: 1, 2, 4 instances on one Redis
#   BENCH_ARGS="--latency-secs 5" bench/run.sh   # any gp-bench flag (gp-bench --help)
#
# Builds the release binaries, installs the legacy-stack peer's dependencies into bench/.venv,
# raises the open-file limit for the 10k idle connections, and runs gp-bench pinned to core 1;
# gp-bench starts each server pinned to core 0. Everything listens on 127.0.0.1 only. Results:
# bench/results/round-N.json, bench/results/tables.md, bench/results/machine.md; with SCALE=1,
# bench/results/scale-round-N.json and bench/results/scale.md. QUICK=1 writes under
# bench/results/quick/ (ignored by git), never over the committed results.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
if [ -n "${QUICK:-}" ]; then
  OUT="${OUT:-bench/results/quick}"
else
  OUT="${OUT:-bench/results}"
fi
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

tools=(cargo python3 taskset)
[ -n "${SCALE:-}" ] && tools+=(redis-server)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 2; }
done
if [ "$(nproc)" -lt 2 ]; then
  echo "bench: needs 2 cores (server on core 0, load generator on core 1)" >&2; exit 2
fi

echo "== build (release)"
cargo build --release --locked -p goldenpath -p goldenpath-bench

if [ -z "${SCALE:-}" ]; then
  echo "== legacy-stack peer: bench/.venv"
  if [ ! -x bench/.venv/bin/python ]; then
    python3 -m venv bench/.venv
  fi
  bench/.venv/bin/pip install --quiet --disable-pip-version-check \
    'fastapi==0.116.*' 'uvicorn==0.35.*' 'websockets==15.*'
fi

# 10k idle connections: the server and the generator each hold one descriptor per connection.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ -z "${SCALE:-}" ] && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 12000 ]; then
  echo "bench: ulimit -n is $(ulimit -n); 10k idle connections need at least 12000" >&2; exit 2
fi

mkdir -p "$OUT"
{
  echo "- machine: $(uname -srm); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  if [ -z "${SCALE:-}" ]; then
    echo "- $(rustc --version); $(bench/.venv/bin/python --version)"
    echo "- peer: $(bench/.venv/bin/pip freeze --disable-pip-version-check | grep -iE '^(fastapi|uvicorn|websockets|starlette|pydantic)==' | tr '\n' ' ')"
  else
    echo "- $(rustc --version); $(redis-server --version | cut -d' ' -f1-3)"
  fi
  echo "- reference: goldenpath $(git rev-parse --short HEAD 2>/dev/null || echo '?'), axum $(grep -A1 '^name = "axum"$' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p'); floor: tokio-tungstenite $(grep -A1 '^name = "tokio-tungstenite"$' Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')"
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); ulimit -n $(ulimit -n)"
} > "$OUT/${SCALE:+scale-}machine.md"
cat "$OUT/${SCALE:+scale-}machine.md"

EXTRA=()
if [ -n "${QUICK:-}" ]; then
  EXTRA=(--latency-secs 3 --step-secs 1.5 --idle-connections 2000)
fi
if [ -n "${SCALE:-}" ]; then
  EXTRA+=(--scale)
fi
echo "== bench: $ROUNDS round(s)"
taskset -c 1 "$TARGET_DIR/release/gp-bench" \
  --goldenpath "$TARGET_DIR/release/goldenpath" \
  --floor "$TARGET_DIR/release/gp-floor" \
  --python bench/.venv/bin/python \
  --peer-dir bench \
  --rounds "$ROUNDS" \
  --server-core 0 \
  --out "$OUT" \
  "${EXTRA[@]}" ${BENCH_ARGS:-}
