// Root Gradle build: plugin versions for every module, and the whole configuration of the
// :platewatch library (android/platewatch keeps only sources and scripts): its Android/Kotlin
// setup, the cargo-ndk build of libplatewatch_ffi.so for each ABI and the generation of the
// UniFFI Kotlin bindings from that library, both wired before preBuild (the way ferrostar's
// android/core does it, with plain Exec tasks instead of a plugin).
import com.android.build.api.dsl.LibraryExtension
import com.android.build.api.variant.LibraryAndroidComponentsExtension
import org.jetbrains.kotlin.gradle.dsl.JvmTarget
import org.jetbrains.kotlin.gradle.tasks.KotlinCompile

plugins {
    id("com.android.application") version "8.7.3" apply false
    id("com.android.library") version "8.7.3" apply false
    id("org.jetbrains.kotlin.android") version "2.0.21" apply false
    id("org.jetbrains.kotlin.plugin.compose") version "2.0.21" apply false
}

/** The repository root (android/..): the Cargo workspace. */
val repoRoot: File = rootDir.parentFile

/** Android ABIs built by cargo-ndk (`-Pplatewatch.abis=arm64-v8a` for a quicker device build). */
val androidAbis: List<String> = providers.gradleProperty("platewatch.abis")
    .getOrElse("arm64-v8a,armeabi-v7a,x86_64")
    .split(",").map { it.trim() }.filter { it.isNotEmpty() }

/** Cargo profile for the Android libraries (the workspace's size-optimised profile). */
val cargoProfile: String = providers.gradleProperty("platewatch.cargoProfile").getOrElse("small-release")

/** NDK used by cargo-ndk and by AGP to strip the libraries when packaging. */
val platewatchNdkVersion: String = providers.gradleProperty("platewatch.ndkVersion").getOrElse("27.2.12479018")

project(":platewatch") {
    apply(plugin = "com.android.library")
    apply(plugin = "org.jetbrains.kotlin.android")

    val rustJniLibs = layout.buildDirectory.dir("rustJniLibs").get().asFile
    val uniffiKotlin = layout.buildDirectory.dir("generated/source/uniffi/kotlin").get().asFile

    extensions.configure<LibraryExtension> {
        namespace = "app.platewatch"
        compileSdk = 35
        ndkVersion = platewatchNdkVersion
        defaultConfig {
            minSdk = 26
        }
        compileOptions {
            sourceCompatibility = JavaVersion.VERSION_17
            targetCompatibility = JavaVersion.VERSION_17
        }
        // The JVM-tested layer (src/main/kotlin), the CameraX adapter (src/androidMain/kotlin)
        // and the generated bindings form one Android source set; the .so files come from
        // cargo-ndk's output directory, never from the source tree.
        sourceSets.getByName("main").java.srcDirs("src/main/kotlin", "src/androidMain/kotlin", uniffiKotlin)
        sourceSets.getByName("main").jniLibs.srcDir(rustJniLibs)
    }

    tasks.withType<KotlinCompile>().configureEach {
        compilerOptions.jvmTarget.set(JvmTarget.JVM_17)
    }
    // src/test/kotlin runs on the desktop JVM against the host library (run-jvm-tests.sh:
    // JNA, javax.imageio, a JDK HTTP server), not as Android unit tests: Gradle skips it.
    tasks.matching { it.name.contains("UnitTest") }.configureEach { enabled = false }

    dependencies {
        // The generated bindings call the library through JNA; the Android AAR carries
        // libjnidispatch.so for every ABI.
        "api"("net.java.dev.jna:jna:5.15.0@aar")
        "api"("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
        "api"("androidx.camera:camera-core:1.4.1")
    }

    val ndkDirectory = extensions.getByType<LibraryAndroidComponentsExtension>().sdkComponents.ndkDirectory

    // cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 -o <jniLibs> build -p platewatch-ffi
    //   --profile small-release
    // Cargo's own strip is turned off for this build (UniFFI reads the bindings' metadata from
    // the symbol table, which `strip = true` removes); AGP strips the libraries when it
    // packages the APK, so what ships is stripped either way.
    val cargoNdkBuild = tasks.register<Exec>("cargoNdkBuild") {
        group = "rust"
        description = "Builds libplatewatch_ffi.so for $androidAbis with cargo-ndk ($cargoProfile)."
        workingDir = repoRoot
        val targets = androidAbis.flatMap { listOf("-t", it) }
        commandLine(
            listOf("cargo", "ndk") + targets +
                listOf("-o", rustJniLibs.absolutePath, "build", "-p", "platewatch-ffi", "--profile", cargoProfile),
        )
        environment("CARGO_PROFILE_${cargoProfile.uppercase().replace('-', '_')}_STRIP", "false")
        // 16 KB page alignment (required for Android 15+ devices with 16 KB pages).
        environment("CARGO_TARGET_AARCH64_LINUX_ANDROID_RUSTFLAGS", "-C link-arg=-Wl,-z,max-page-size=16384")
        environment("CARGO_TARGET_X86_64_LINUX_ANDROID_RUSTFLAGS", "-C link-arg=-Wl,-z,max-page-size=16384")
        outputs.dir(rustJniLibs)
        // Cargo decides what is up to date.
        outputs.upToDateWhen { false }
        doFirst {
            if (System.getenv("ANDROID_NDK_HOME").isNullOrBlank()) {
                val ndk = runCatching { ndkDirectory.get().asFile }.getOrNull()
                if (ndk != null && ndk.isDirectory) (this as Exec).environment("ANDROID_NDK_HOME", ndk.absolutePath)
            }
        }
    }

    // The Kotlin bindings, generated from the arm64 library with the workspace's
    // uniffi-bindgen (android/platewatch/generate-bindings.sh), so they always match it.
    val generateUniffiBindings = tasks.register<Exec>("generateUniffiBindings") {
        group = "rust"
        description = "Generates the UniFFI Kotlin bindings (package app.platewatch.ffi)."
        dependsOn(cargoNdkBuild)
        workingDir = repoRoot
        val abi = if ("arm64-v8a" in androidAbis) "arm64-v8a" else androidAbis.first()
        val library = File(rustJniLibs, "$abi/libplatewatch_ffi.so")
        inputs.file(library)
        outputs.dir(uniffiKotlin)
        commandLine(
            "bash", File(repoRoot, "android/platewatch/generate-bindings.sh").absolutePath,
            library.absolutePath, uniffiKotlin.absolutePath, "kotlin",
        )
        doLast {
            val generated = File(uniffiKotlin, "app/platewatch/ffi/platewatch.kt")
            if (!generated.isFile || !generated.readText().contains("class Scanner")) {
                throw GradleException(
                    "uniffi-bindgen produced no Scanner bindings from $library " +
                        "(was the library stripped? UniFFI reads its metadata from the symbol table)",
                )
            }
        }
    }

    // Everything of a build variant (compiling, merging JNI libs, lint, …) reads the generated
    // bindings or the libraries: make each of those tasks, and preBuild, run after the Rust build
    // (Gradle refuses tasks that read another task's output without depending on it).
    tasks.matching { it.name == "preBuild" }.configureEach { dependsOn(generateUniffiBindings) }
    tasks.configureEach {
        if (name.contains("Debug") || name.contains("Release")) dependsOn(generateUniffiBindings)
    }
}
