// swift-tools-version:5.9
// SwiftPM package: libplatewatch_ffi's XCFramework, the generated UniFFI bindings (PlatewatchFFI) and the Swift layer (Platewatch).
//
// build-xcframework.sh makes build/PlatewatchFFI.xcframework and build/generated/swift (never
// committed). The app (App/, project.yml) depends on the "Platewatch" product.
import PackageDescription

let package = Package(
    name: "Platewatch",
    platforms: [.iOS(.v16)],
    products: [
        .library(name: "Platewatch", targets: ["Platewatch", "PlatewatchFFI"]),
    ],
    targets: [
        // The static libraries (device, simulator) with the C header and module map.
        .binaryTarget(name: "PlatewatchFFIFFI", path: "build/PlatewatchFFI.xcframework"),
        // The generated Swift bindings: Scanner, records, PlatewatchError, ScanListener.
        .target(
            name: "PlatewatchFFI",
            dependencies: ["PlatewatchFFIFFI"],
            path: "build/generated/swift",
            exclude: ["PlatewatchFFIFFI.h", "PlatewatchFFIFFI.modulemap"],
            sources: ["PlatewatchFFI.swift"]
        ),
        // Camera feed (CVPixelBuffer → pushFrameBuffers), event stream, Keychain, error text.
        .target(name: "Platewatch", dependencies: ["PlatewatchFFI"], path: "Sources/Platewatch"),
    ]
)
