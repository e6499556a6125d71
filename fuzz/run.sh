#!/usr/bin/env bash
# Runs the fuzz targets, each for a bounded time, on a nightly toolchain with
# cargo-fuzz. Usage: fuzz/run.sh [SECONDS_EACH] [TARGET...]  (default: 60 s, all).
# New corpus entries go to fuzz/corpus/<target>/ (not committed); crashes to
# fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
if [ "$#" -eq 0 ]; then
  set -- username directory_username otp_code json_bodies platform_frame
fi
# The code is safe Rust (unsafe_code is forbidden in the workspace), so the
# address sanitizer adds little but time.
cargo +nightly fuzz build --sanitizer none
for target in "$@"; do
  mkdir -p "corpus/$target"
  echo "== $target: ${secs}s"
  cargo +nightly fuzz run --sanitizer none "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -max_len=20000 -timeout=30 -print_final_stats=1
done
