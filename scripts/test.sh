#!/usr/bin/env bash
# Runs every Bramble test: formatting, lints, unit/property tests, and the interop tests with
# real BIRD and GoBGP in network namespaces. Must run as root (namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $EUID -eq 0 ]] || { echo "test.sh: run as root (the tests create network namespaces)" >&2; exit 1; }
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins
cargo test --workspace --no-fail-fast -- --test-threads "${BRAMBLE_TEST_THREADS:-4}"
# Every fuzz target for a bounded time from the seed corpus (BRAMBLE_FUZZ_SECS=0 skips).
if [[ "${BRAMBLE_FUZZ_SECS:-30}" != 0 ]]; then
    scripts/fuzz.sh "${BRAMBLE_FUZZ_SECS:-30}"
fi
