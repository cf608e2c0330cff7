#!/usr/bin/env bash
# Builds libplatewatch_ffi for iOS devices and simulators (small-release), generates the Swift
# bindings with the workspace's uniffi-bindgen and packs build/PlatewatchFFI.xcframework for
# Package.swift. macOS with Xcode and rustup only; CI on Linux runs just the binding generation.
#   ios/build-xcframework.sh            # PROFILE=release to build with the release profile
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"

profile=${PROFILE:-small-release}
device=aarch64-apple-ios
simulators=(aarch64-apple-ios-sim x86_64-apple-ios)
out="$here/build"

if [ "$(uname -s)" != Darwin ]; then
  echo "build-xcframework: needs macOS with Xcode (xcodebuild, lipo)" >&2
  exit 1
fi
for tool in cargo rustup lipo xcodebuild; do
  command -v "$tool" >/dev/null || { echo "build-xcframework: $tool not found" >&2; exit 1; }
done

# Match Package.swift's platforms (.iOS(.v16)) so the linker does not warn about newer objects.
export IPHONEOS_DEPLOYMENT_TARGET=${IPHONEOS_DEPLOYMENT_TARGET:-16.0}

target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
lib() { echo "$target_dir/$1/$profile/libplatewatch_ffi.a"; }

for t in "$device" "${simulators[@]}"; do
  rustup target add "$t"
  cargo build -p platewatch-ffi --lib --profile "$profile" --target "$t"
done

rm -rf "$out/generated/swift" "$out/PlatewatchFFI.xcframework" "$out/headers" "$out/sim"

# Swift bindings (PlatewatchFFI.swift, PlatewatchFFIFFI.h, PlatewatchFFIFFI.modulemap) from the
# device library's metadata (a static archive keeps it; the profile's strip applies to linked
# artifacts only).
android/platewatch/generate-bindings.sh "$(lib "$device")" "$out/generated/swift" swift
grep -q "class Scanner" "$out/generated/swift/PlatewatchFFI.swift" || {
  echo "build-xcframework: uniffi-bindgen generated no Scanner bindings" >&2
  exit 1
}

# The XCFramework's headers: the C header and the module map under the name Clang looks for.
mkdir -p "$out/headers" "$out/sim"
cp "$out/generated/swift/PlatewatchFFIFFI.h" "$out/headers/"
cp "$out/generated/swift/PlatewatchFFIFFI.modulemap" "$out/headers/module.modulemap"

# One fat library for both simulator architectures (an XCFramework holds one per platform).
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$out/sim/libplatewatch_ffi.a"

xcodebuild -create-xcframework \
  -library "$(lib "$device")" -headers "$out/headers" \
  -library "$out/sim/libplatewatch_ffi.a" -headers "$out/headers" \
  -output "$out/PlatewatchFFI.xcframework"
echo "built $out/PlatewatchFFI.xcframework and $out/generated/swift"
