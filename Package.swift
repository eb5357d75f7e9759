// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "ScopeGate",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "scopegate", targets: ["scopegate"]),
        .library(name: "ScopeGateCore", targets: ["ScopeGateCore"]),
        // The floor of `benchmarks/proxy.py`: a byte relay on SwiftNIO, no HTTP.
        .executable(name: "relay-floor", targets: ["RelayFloor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "ScopeGateCore",
            dependencies: [
                .product(name: "Logging", package: "swift-log")
            ]
        ),
        .target(
            name: "ScopeGateStore",
            dependencies: [
                "ScopeGateCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]
        ),
        .target(
            name: "ScopeGateAudit",
            dependencies: [
                "ScopeGateCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "ScopeGateServer",
            dependencies: [
                "ScopeGateCore",
                "ScopeGateStore",
                "ScopeGateAudit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // Every request crosses this module's proxy on the event loop: its release build leaves
            // exclusive access to memory to the compiler's static checks, without the run-time check on
            // every access to a class's stored property. Debug builds, which every test runs, keep both.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]
        ),
        .target(
            name: "ScopeGateDemo",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "scopegate",
            dependencies: [
                "ScopeGateServer",
                "ScopeGateAudit",
                "ScopeGateStore",
                "ScopeGateDemo",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The gate's own cost per request, for benchmarks/gate_cost.py; never linked into `scopegate`.
        .executableTarget(
            name: "gate-cost", dependencies: ["ScopeGateCore", .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "ScopeGateCoreTests", dependencies: ["ScopeGateCore"]),
        .testTarget(
            name: "ScopeGateStoreTests",
            dependencies: ["ScopeGateStore", "ScopeGateAudit", .product(name: "PostgresNIO", package: "postgres-nio")]
        ),
        .testTarget(
            name: "ScopeGateAuditTests",
            dependencies: ["ScopeGateAudit", "ScopeGateStore", "ScopeGateCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "ScopeGateServerTests",
            dependencies: [
                "ScopeGateServer",
                "ScopeGateStore",
                "ScopeGateAudit",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            exclude: ["Vectors"]
        ),
        .executableTarget(
            name: "RelayFloor",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
    ]
)
