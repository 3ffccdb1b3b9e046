// swift-tools-version:6.2
// The benchmark executables, kept out of the product's package so that building or testing the
// product never compiles them. This package depends on the product by path; build and run them
// through Benchmarks/build (the one place that knows where the binaries land):
//
//   Benchmarks/build store-benchmark worker-benchmark   # release, into the product's .build/release
//   .build/release/store-benchmark --help
//
// or by hand, from the repository: swift build -c release --package-path Benchmarks --scratch-path .build
// (`--scratch-path .build` reuses the product's checkouts and compiled dependencies; without it the
// package builds everything again in Benchmarks/.build).
import PackageDescription

let package = Package(
    name: "SignalWorkerBenchmarks",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "zeromq-benchmark", targets: ["zeromq-benchmark"]),
        .executable(name: "protocol-benchmark", targets: ["protocol-benchmark"]),
        .executable(name: "store-benchmark", targets: ["store-benchmark"]),
        .executable(name: "worker-benchmark", targets: ["worker-benchmark"]),
    ],
    dependencies: [
        // The product. `name:` keeps the product references below independent of the checkout's
        // directory name (a path dependency's identity is its last path component otherwise).
        .package(name: "DjangoSignalWorker", path: ".."),
        // The same versions as the product's Package.swift: both resolve to the same checkouts.
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // Each executable writes its results to a Markdown file under Benchmarks/results/.
        .executableTarget(
            name: "zeromq-benchmark",
            dependencies: [
                .product(name: "ZeroMQ", package: "DjangoSignalWorker"),
                // libzmq's C API, for the raw loop the wrapper is measured against.
                .product(name: "CZeroMQ", package: "DjangoSignalWorker"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "ZeroMQBenchmark"
        ),
        .executableTarget(
            name: "protocol-benchmark",
            dependencies: [
                .product(name: "SignalProtocol", package: "DjangoSignalWorker"),
                .product(name: "SignalInbox", package: "DjangoSignalWorker"),
                .product(name: "ProfileReceiver", package: "DjangoSignalWorker"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "ProtocolBenchmark"
        ),
        .executableTarget(
            name: "store-benchmark",
            dependencies: [
                .product(name: "SignalProtocol", package: "DjangoSignalWorker"),
                .product(name: "SignalInbox", package: "DjangoSignalWorker"),
                .product(name: "ProfileReceiver", package: "DjangoSignalWorker"),
                .product(name: "SignalStoreSQLite", package: "DjangoSignalWorker"),
                .product(name: "SignalStorePostgres", package: "DjangoSignalWorker"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "StoreBenchmark"
        ),
        .executableTarget(
            name: "worker-benchmark",
            dependencies: [
                .product(name: "SignalWorker", package: "DjangoSignalWorker"),
                .product(name: "SignalBroker", package: "DjangoSignalWorker"),
                .product(name: "WorkerOperations", package: "DjangoSignalWorker"),
                .product(name: "ZeroMQ", package: "DjangoSignalWorker"),
                .product(name: "SignalProtocol", package: "DjangoSignalWorker"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "WorkerBenchmark"
        ),
    ]
)

// As in the product's package: Swift 6 language mode (the tools version's default) plus these.
for target in package.targets {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
