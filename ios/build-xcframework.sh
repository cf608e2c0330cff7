#!/usr/bin/env bash
# Builds libplatewatch_ffi for iOS devices and simulators (small-release profile), generates
# the Swift bindings and packs build/PlatewatchFFI.xcframework for Package.swift. macOS with
# Xcode only; CI on Linux runs just the binding generation (see .ci/run).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
profile=${PROFILE:-small-release}
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios)
for t in "${targets[@]}"; do
  rustup target add "$t"
  cargo build -p platewatch-ffi --lib --profile "$profile" --target "$t"
done
out="$here/build"
rm -rf "$out/generated/swift" "$out/PlatewatchFFI.xcframework" "$out/headers" "$out/sim"
android/platewatch/generate-bindings.sh "target/aarch64-apple-ios/$profile/libplatewatch_ffi.a" \
  "$out/generated/swift" swift
mkdir -p "$out/headers" "$out/sim"
cp "$out/generated/swift/PlatewatchFFIFFI.h" "$out/headers/"
cp "$out/generated/swift/PlatewatchFFIFFI.modulemap" "$out/headers/module.modulemap"
lipo -create "target/aarch64-apple-ios-sim/$profile/libplatewatch_ffi.a" \
  "target/x86_64-apple-ios/$profile/libplatewatch_ffi.a" -output "$out/sim/libplatewatch_ffi.a"
xcodebuild -create-xcframework \
  -library "target/aarch64-apple-ios/$profile/libplatewatch_ffi.a" -headers "$out/headers" \
  -library "$out/sim/libplatewatch_ffi.a" -headers "$out/headers" \
  -output "$out/PlatewatchFFI.xcframework"
echo "built $out/PlatewatchFFI.xcframework"
