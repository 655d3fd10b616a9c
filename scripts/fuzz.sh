#!/usr/bin/env bash
# Runs every fuzz target in bgp/fuzz for a bounded time (default 30 s each), starting from the
# seed corpus in the repo (real BIRD/GoBGP/FRR messages). New inputs go to a scratch directory,
# not the repo; a crash leaves its input in bgp/fuzz/artifacts/ and fails the script.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 unlocks them on the stable toolchain.
set -euo pipefail
secs="${1:-30}"
cd "$(dirname "$0")/../bgp/fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
scratch="$(mktemp -d /tmp/bramble-fuzz.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
for target in $(cargo fuzz list); do
    mkdir -p "$scratch/$target"
    echo "== fuzz $target for ${secs}s"
    rc=0
    cargo fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$scratch/$target.log" 2>&1 || rc=$?
    grep -E "^(stat::number_of_executed_units|stat::new_units_added|stat::peak_rss_mb)|^SUMMARY|panicked" \
        "$scratch/$target.log" || true
    if ((rc != 0)); then
        tail -40 "$scratch/$target.log" >&2
        echo "fuzz: $target failed (exit $rc); the input is in bgp/fuzz/artifacts/$target/" >&2
        exit 1
    fi
done
