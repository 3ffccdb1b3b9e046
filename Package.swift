// swift-tools-version:6.2
// SPDX-License-Identifier: MIT. The license text is LICENSE at the root, shared with python-bridge (its LICENSE, pyproject.toml) and the Debian package (/usr/share/doc/signal-worker/copyright).
import PackageDescription

let package = Package(
    name: "DjangoSignalWorker",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "signal-worker", targets: ["signal-worker"]),
        .library(name: "ZeroMQ", targets: ["ZeroMQ"]),
        .library(name: "SignalProtocol", targets: ["SignalProtocol"]),
        .library(name: "SignalInbox", targets: ["SignalInbox"]),
        .library(name: "ProfileReceiver", targets: ["ProfileReceiver"]),
        .library(name: "DRFTokenReceiver", targets: ["DRFTokenReceiver"]),
        .library(name: "SignalWorker", targets: ["SignalWorker"]),
        .library(name: "SignalBroker", targets: ["SignalBroker"]),
        .library(name: "WorkerOperations", targets: ["WorkerOperations"]),
        // For the benchmark package (Benchmarks/Package.swift), which depends on this one by path:
        // the stores it times directly, and libzmq's C API for the raw baseline of zeromq-benchmark.
        .library(name: "SignalStoreSQLite", targets: ["SignalStoreSQLite"]),
        .library(name: "SignalStorePostgres", targets: ["SignalStorePostgres"]),
        .library(name: "CZeroMQ", targets: ["CZeroMQ"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // MARK: ZeroMQ
        // libzmq3-dev (Debian) puts zmq.h in /usr/include and libzmq.so on the default library path;
        // module.modulemap links it. No `pkgConfig:` on purpose: Debian's libzmq.pc adds
        // `-isystem /usr/include/mit-krb5` (a dependency's flags), which SwiftPM refuses with
        // "warning: prohibited flag(s)" on every build, and zmq.h itself needs none of them.
        .systemLibrary(name: "CZeroMQ"),
        .target(
            name: "ZeroMQ",
            dependencies: ["CZeroMQ"]
        ),

        // MARK: Protocol, inbox and receivers (no I/O)
        .target(name: "SignalProtocol"),
        // Exactly once and ordering for every receiver; the receiver and store protocols.
        .target(name: "SignalInbox", dependencies: ["SignalProtocol"]),
        // Receivers: each is a PostSaveReceiver and its SQL, nothing else.
        .target(name: "ProfileReceiver", dependencies: ["SignalProtocol", "SignalInbox"]),
        .target(name: "DRFTokenReceiver", dependencies: ["SignalProtocol", "SignalInbox"]),

        // MARK: Stores (SQL and connections; no receiver knowledge)
        .target(
            name: "SignalStoreSQLite",
            dependencies: [
                "SignalInbox",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "SignalStorePostgres",
            dependencies: [
                "SignalInbox",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),

        // MARK: Runtime and executable
        // Plumbing shared by the worker and the broker: CURVE key files and ZAP, the bind policy,
        // socket threads, the metrics endpoint, the ping client, JSON logs, errors.
        .target(
            name: "WorkerOperations",
            dependencies: [
                "ZeroMQ",
                "SignalProtocol",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The worker's runtime: sockets, the queue, the apply loop, retry holds, shutdown.
        .target(
            name: "SignalWorker",
            dependencies: [
                "WorkerOperations",
                "ZeroMQ",
                "SignalProtocol",
                "SignalInbox",
                "SignalStoreSQLite",
                "SignalStorePostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        // `signal-worker broker`: sticky routing to several workers.
        .target(
            name: "SignalBroker",
            dependencies: [
                "WorkerOperations",
                "ZeroMQ",
                "SignalProtocol",
                "SignalInbox",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "signal-worker",
            // The only place that wires concrete stores and receivers together (ReceiverCatalog,
            // StoreBootstrap, WorkerServices).
            dependencies: [
                "SignalWorker",
                "SignalBroker",
                "WorkerOperations",
                "SignalInbox",
                "ProfileReceiver",
                "DRFTokenReceiver",
                "SignalStoreSQLite",
                "SignalStorePostgres",
                "ZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),

        // MARK: Fuzzing (a property-based fuzzer: the library is shared by the tests and the long runs)
        .target(
            name: "RequestFuzzing",
            dependencies: [
                "SignalProtocol", "SignalInbox", "ProfileReceiver", "DRFTokenReceiver", "SignalWorker", "SignalBroker",
                "WorkerOperations",
            ],
            path: "Fuzz/RequestFuzzing"
        ),
        .executableTarget(
            name: "request-fuzz",
            dependencies: ["RequestFuzzing"],
            path: "Fuzz/RequestFuzz"
        ),

        // MARK: Tests
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ", "CZeroMQ"]),
        .testTarget(name: "SignalProtocolTests", dependencies: ["SignalProtocol"]),
        .testTarget(name: "ProfileReceiverTests", dependencies: ["ProfileReceiver", "DRFTokenReceiver", "SignalInbox", "SignalProtocol"]),
        .testTarget(
            name: "ProfileStoreTests",
            dependencies: [
                "ProfileReceiver", "DRFTokenReceiver", "SignalInbox", "SignalProtocol", "SignalStoreSQLite",
                "SignalStorePostgres",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "SignalWorkerTests",
            dependencies: [
                "SignalWorker", "SignalBroker", "WorkerOperations", "ZeroMQ", "SignalProtocol", "SignalInbox",
                "ProfileReceiver", "RequestFuzzing",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
    ]
)

for target in package.targets where target.type != .system {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
