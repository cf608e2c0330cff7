#!/usr/bin/env bash
# Size of what ships on a phone: the stripped small-release host build of libplatewatch_ffi and
# the two ONNX models, against the 12 MB goal (issue 6; 1 MB = 10^6 bytes).
#   uniffi/size-report.sh              # builds: cargo build -p platewatch-ffi --profile small-release
#   SKIP_BUILD=1 uniffi/size-report.sh # measures what is already built
#   TARGET=aarch64-unknown-linux-gnu uniffi/size-report.sh
#                                      # the phones' architecture (arm64 Linux: the same code as
#                                      # Android/iOS arm64 without an NDK; Debian's
#                                      # gcc-aarch64-linux-gnu compiles and links the C parts)
# Exit 1 when the build fails or the library is missing, 2 when the total is over the goal.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

goal_bytes=$((12 * 1000 * 1000))
target_dir=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null || echo "$repo/target")}
target=${TARGET:-}
lib="$target_dir/small-release/libplatewatch_ffi.so"
strip_cmd=strip
target_args=()
if [ -n "$target" ]; then
  lib="$target_dir/$target/small-release/libplatewatch_ffi.so"
  target_args=(--target "$target")
  if [ "$target" = aarch64-unknown-linux-gnu ]; then
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    strip_cmd=aarch64-linux-gnu-strip
  fi
fi
models=(models/plate_detector.onnx models/plate_refiner.onnx models/plate_reader.onnx)

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  echo "size-report: cargo build -p platewatch-ffi --profile small-release" >&2
  cargo build -p platewatch-ffi --profile small-release "${target_args[@]}" || {
    echo "size-report: the small-release build of platewatch-ffi failed" >&2
    exit 1
  }
fi
if [ ! -f "$lib" ]; then
  echo "size-report: $lib is missing." >&2
  echo "size-report: build it first: cargo build -p platewatch-ffi --profile small-release" >&2
  exit 1
fi
for m in "${models[@]}"; do
  [ -f "$m" ] || { echo "size-report: $m is missing" >&2; exit 1; }
done

size() { stat -c %s "$1" 2>/dev/null || stat -f %z "$1"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.2f MB", b / 1000000 }'; }

# The profile strips already (strip = true); strip a copy again to be sure of what is measured.
lib_bytes=$(size "$lib")
if command -v "$strip_cmd" >/dev/null; then
  tmp=$(mktemp)
  trap 'rm -f "$tmp"' EXIT
  cp "$lib" "$tmp"
  if "$strip_cmd" --strip-all "$tmp" 2>/dev/null || "$strip_cmd" -x "$tmp" 2>/dev/null; then
    stripped=$(size "$tmp")
    [ "$stripped" -lt "$lib_bytes" ] && lib_bytes=$stripped
  fi
fi

total=$lib_bytes
printf '%-48s %12s %10s\n' "file" "bytes" "size"
printf '%-48s %12d %10s\n' "libplatewatch_ffi.so (${target:-host}, stripped)" "$lib_bytes" "$(mb "$lib_bytes")"
for m in "${models[@]}"; do
  b=$(size "$m")
  total=$((total + b))
  printf '%-48s %12d %10s\n' "$m" "$b" "$(mb "$b")"
done
printf '%-48s %12d %10s\n' "total" "$total" "$(mb "$total")"
if [ "$total" -le "$goal_bytes" ]; then
  echo "size-report: within the 12 MB goal ($(mb $((goal_bytes - total))) to spare)"
else
  echo "size-report: OVER the 12 MB goal by $(mb $((total - goal_bytes)))" >&2
  exit 2
fi
