#!/usr/bin/env bash
# Generates the UniFFI bindings from a built platewatch-ffi library (they are never committed).
#   android/platewatch/generate-bindings.sh LIBRARY OUT_DIR [kotlin|swift]
# e.g. target/debug/libplatewatch_ffi.so build/generated/kotlin kotlin. Uses the workspace's
# `uniffi-bindgen` (crate uniffi/bindgen), so the generator always matches the library's UniFFI.
set -euo pipefail
lib=${1:?library path}
out=${2:?output directory}
lang=${3:-kotlin}
repo=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$out"
mkdir -p "$out"
cd "$repo"
if [ -n "${UNIFFI_BINDGEN:-}" ]; then
  # A uniffi-bindgen already built (run-jvm-tests.sh and .ci/run pass the one `cargo test-all`'s
  # workspace build made, so nothing is compiled again for a narrower feature set).
  "$UNIFFI_BINDGEN" generate --library "$lib" --language "$lang" --out-dir "$out" --no-format
else
  cargo run -q -p platewatch-uniffi-bindgen --bin uniffi-bindgen -- \
    generate --library "$lib" --language "$lang" --out-dir "$out" --no-format
fi
