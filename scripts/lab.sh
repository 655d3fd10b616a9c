#!/usr/bin/env bash
# Sets up and runs the Bramble lab: a BIRD ToR and two Bramble nodes in network namespaces, with
# containers created through CNI (ptp + bramble-ipam); containers on different nodes ping each
# other over BGP-learned routes.
# Usage (as root): scripts/lab.sh [--aggregate] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "lab.sh: run as root (the lab creates network namespaces)" >&2; exit 1; }
scripts/deps.sh
cargo build --workspace --bins
exec target/debug/lab "$@"
