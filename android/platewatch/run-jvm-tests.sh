#!/usr/bin/env bash
# JVM tests of the Kotlin library: builds the host (debug) libplatewatch_ffi, generates the
# Kotlin bindings, renders the test frames, compiles bindings + library + tests with kotlinc
# and runs them on the JVM through JNA. Needs a JDK, kotlinc (npm `kotlin-compiler`), Debian's
# libjna-java and junit4 (.ci/run installs them). Ends with "kotlin-jvm: N passed, M failed".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build="$here/build"
cd "$repo"

kotlinc=${KOTLINC:-$(command -v kotlinc || true)}
if [ -z "$kotlinc" ] && command -v npm >/dev/null; then
  kotlinc="$(npm root -g)/kotlin-compiler/bin/kotlinc"
fi
[ -x "$kotlinc" ] || { echo "run-jvm-tests: kotlinc not found (npm install -g kotlin-compiler@2)" >&2; exit 1; }
klib="$(cd "$(dirname "$(readlink -f "$kotlinc")")/../lib" && pwd)"
jars=/usr/share/java
for j in "$jars/jna.jar" "$jars/junit4.jar" "$jars/hamcrest-core.jar" "$klib/kotlinx-coroutines-core-jvm.jar"; do
  [ -f "$j" ] || { echo "run-jvm-tests: missing $j (apt-get install libjna-java junit4)" >&2; exit 1; }
done
cp_compile="$jars/jna.jar:$jars/junit4.jar:$klib/kotlinx-coroutines-core-jvm.jar"

target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# The workspace with every feature, as `cargo test-all` builds it: in CI this reuses that build
# instead of compiling tract & co. again for a narrower feature set.
cargo build -q --workspace --all-features --lib --examples --bin uniffi-bindgen --bin platewatch
lib="$target_dir/debug/libplatewatch_ffi.so"
UNIFFI_BINDGEN="$target_dir/debug/uniffi-bindgen" "$here/generate-bindings.sh" "$lib" "$build/generated/kotlin" kotlin
"$target_dir/debug/examples/render_fixture" "$build/fixtures"

rm -rf "$build/classes"
echo "run-jvm-tests: compiling with $("$kotlinc" -version 2>&1 | tail -1)"
"$kotlinc" -jvm-target 17 -nowarn -cp "$cp_compile" -d "$build/classes" \
  "$build/generated/kotlin" "$here/src/main/kotlin" "$here/src/test/kotlin"

java -Xmx512m -Djna.library.path="$target_dir/debug" \
  -Djna.boot.library.path=/usr/lib/x86_64-linux-gnu/jni:/usr/lib/jni \
  -Dplatewatch.repo="$repo" -Dplatewatch.fixtures="$build/fixtures" \
  -Dplatewatch.bin="$target_dir/debug/platewatch" \
  -cp "$build/classes:$klib/kotlin-stdlib.jar:$cp_compile:$jars/hamcrest-core.jar" \
  app.platewatch.ScannerTestKt
