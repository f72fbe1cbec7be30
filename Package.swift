// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "mcp-portal",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "mcp-portal", targets: ["mcp-portal"]),
        .executable(name: "mcp-bench-upstream", targets: ["mcp-bench-upstream"]),
        .executable(name: "mcp-bench-dlp", targets: ["mcp-bench-dlp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
    ],
    targets: [
        .target(name: "MCPWire", swiftSettings: strict),
        .target(
            name: "PortalCore",
            dependencies: [
                "MCPWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Upstream",
            dependencies: [
                "MCPWire", "PortalCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .systemLibrary(
            name: "CJavaScriptCore",
            pkgConfig: "javascriptcoregtk-4.1",
            providers: [.apt(["libjavascriptcoregtk-4.1-dev"])]
        ),
        .target(
            name: "CodeMode",
            dependencies: [
                "MCPWire", "PortalCore", "CJavaScriptCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .systemLibrary(
            name: "CHyperscan",
            pkgConfig: "libhs",
            providers: [.apt(["libhyperscan-dev"])]
        ),
        .target(name: "CDigitRuns"),
        .target(
            name: "DLP",
            dependencies: ["MCPWire", "PortalCore", "CHyperscan", "CDigitRuns"],
            swiftSettings: strict
        ),
        .target(
            name: "Gateway",
            dependencies: [
                "MCPWire", "PortalCore", "Upstream", "CodeMode", "DLP",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "Storage",
            dependencies: [
                "PortalCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "DemoServers",
            dependencies: [
                "MCPWire", "PortalCore",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "HTTPEdge",
            dependencies: [
                "MCPWire", "PortalCore", "Gateway", "CodeMode", "Storage", "Upstream", "DemoServers",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "mcp-portal",
            dependencies: [
                "HTTPEdge", "PortalCore", "Storage", "DemoServers", "MCPWire", "DLP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "mcp-bench-upstream",
            dependencies: [
                "MCPWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "bench/upstream"
        ),
        .executableTarget(
            name: "mcp-bench-dlp",
            dependencies: ["DLP", "MCPWire", "PortalCore", "CHyperscan"],
            path: "bench/dlp-scan"
        ),
        .testTarget(name: "MCPWireTests", dependencies: ["MCPWire"]),
        .testTarget(name: "PortalCoreTests", dependencies: ["PortalCore"]),
        .testTarget(name: "DLPTests", dependencies: ["DLP", "MCPWire", "PortalCore"]),
        .testTarget(name: "CodeModeTests", dependencies: ["CodeMode", "MCPWire", "PortalCore"]),
        .testTarget(
            name: "UpstreamTests",
            dependencies: ["Upstream", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: ["Gateway", "PortalCore", "MCPWire", "Upstream", "DemoServers", "Storage", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .testTarget(
            name: "HTTPEdgeTests",
            dependencies: [
                "HTTPEdge", "Gateway", "Upstream",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ]
)
