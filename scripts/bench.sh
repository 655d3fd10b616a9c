#!/usr/bin/env bash
# Issue-6 scale benchmark: feeders → Bramble / BIRD / GoBGP → monitor, in network namespaces.
# Usage (as root): scripts/bench.sh [--quick] [--scenario a|b|c|d|all] [--dut bramble,bird,gobgp]
#                                   [--fib] [--out DIR]
# Report: target/bench/report.md, report.svg, results.json (or --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "bench.sh: run as root (the benchmark creates network namespaces)" >&2; exit 1; }
scripts/deps.sh
cargo build --release -p agent -p interop-tests --bins
exec target/release/bench "$@"
