// Gradle settings for the Android build: the app (:app) and the Kotlin library over the
// Rust core (:platewatch, android/platewatch; its Gradle configuration lives in the root
// build.gradle.kts so that directory holds only sources and scripts).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "platewatch-android"
include(":platewatch", ":app")
