// The Platewatch Android app: a thin Jetpack Compose shell over the :platewatch library
// (Scanner, events Flow, ScannerAnalyzer), with the two ONNX models packed as assets.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget
import org.jetbrains.kotlin.gradle.tasks.KotlinCompile

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    id("org.jetbrains.kotlin.plugin.compose")
}

val repoRoot: File = rootDir.parentFile
val modelAssets = layout.buildDirectory.dir("generated/assets/models").get().asFile

android {
    namespace = "app.platewatch.app"
    compileSdk = 35

    defaultConfig {
        applicationId = "app.platewatch"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    buildTypes {
        release {
            isMinifyEnabled = false
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }

    buildFeatures {
        compose = true
    }

    // The models are read once at scanner creation (ModelSource.Bytes); they come from the
    // repository's models/ directory, never copied into the source tree.
    sourceSets.getByName("main").assets.srcDir(modelAssets)
}

tasks.withType<KotlinCompile>().configureEach {
    compilerOptions.jvmTarget.set(JvmTarget.JVM_17)
}

val copyModels = tasks.register<Copy>("copyModels") {
    description = "Copies plate_detector.onnx, plate_refiner.onnx and plate_reader.onnx into the app's assets."
    from(File(repoRoot, "models")) {
        include("plate_detector.onnx", "plate_refiner.onnx", "plate_reader.onnx")
    }
    into(modelAssets)
}
tasks.named("preBuild") { dependsOn(copyModels) }

dependencies {
    implementation(project(":platewatch"))

    implementation(platform("androidx.compose:compose-bom:2024.12.01"))
    implementation("androidx.compose.ui:ui")
    implementation("androidx.compose.foundation:foundation")
    implementation("androidx.compose.material3:material3")
    implementation("androidx.activity:activity-compose:1.9.3")
    implementation("androidx.core:core-ktx:1.15.0")
    implementation("androidx.lifecycle:lifecycle-viewmodel-compose:2.8.7")
    implementation("androidx.lifecycle:lifecycle-runtime-compose:2.8.7")

    implementation("androidx.camera:camera-camera2:1.4.1")
    implementation("androidx.camera:camera-lifecycle:1.4.1")
    implementation("androidx.camera:camera-view:1.4.1")

    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}
