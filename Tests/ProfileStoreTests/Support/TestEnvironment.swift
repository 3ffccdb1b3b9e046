import SignalInbox
import Foundation
import Synchronization

/// The environment the store tests run in (set by `scripts/test`).
enum TestEnvironment {
    /// `SIGNAL_WORKER_TEST_POSTGRES_URL`: a database whose public schema Django migrated.
    static let postgresURL: String? = {
        let value = ProcessInfo.processInfo.environment["SIGNAL_WORKER_TEST_POSTGRES_URL"].flatMap { $0.isEmpty ? nil : $0 }
        if value == nil {
            let banner = String(repeating: "!", count: 78)
            print(
                """
                \(banner)
                !!! SKIPPING PostgreSQL tests: set SIGNAL_WORKER_TEST_POSTGRES_URL
                !!! (scripts/test does; e.g. postgres://postgres@127.0.0.1:5432/signal_worker_test)
                \(banner)
                """)
        }
        return value
    }()

    /// Whether the PostgreSQL tests run.
    static var postgresEnabled: Bool { postgresURL != nil }

    /// `SIGNAL_WORKER_TEST_DJANGO_SQLITE`: an SQLite file migrated by Django (copy it, never write it).
    static let djangoSQLiteTemplate: String? = ProcessInfo.processInfo.environment["SIGNAL_WORKER_TEST_DJANGO_SQLITE"]
        .flatMap { $0.isEmpty ? nil : $0 }

    /// A new empty directory under the system temp directory.
    static func makeTemporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("profile-store-tests-\(UUID().uuidString.prefix(8).lowercased())", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

/// Time-ordered message ids in the UUIDv7 layout (48-bit milliseconds, then a counter),
/// as the shim sends them.
enum MessageIDs {
    private static let counter = Atomic<UInt64>(0)

    static func next() -> String {
        let millis = UInt64(Date().timeIntervalSince1970 * 1000)
        let count = counter.add(1, ordering: .relaxed).newValue
        let random = UInt64.random(in: 0..<(1 << 16))
        func hex(_ value: UInt64, _ digits: Int) -> String {
            let text = String(value, radix: 16)
            return String(repeating: "0", count: max(0, digits - text.count)) + text
        }
        let time = hex(millis & 0xFFFF_FFFF_FFFF, 12)
        return "\(time.prefix(8))-\(time.suffix(4))-7\(hex((count >> 40) & 0xFFF, 3))-"
            + "\(hex(0x8000 | ((count >> 28) & 0x0FFF), 4))-\(hex(((count & 0x0FFF_FFFF) << 20) | random, 12))"
    }
}

/// Bounds how many fixtures of one kind exist at once: Swift Testing runs parameterized
/// cases all in parallel, and each PostgreSQL fixture holds connections.
actor FixtureLimiter {
    static let sqlite = FixtureLimiter(16)
    static let postgres = FixtureLimiter(6)

    private var available: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(_ count: Int) { available = count }

    /// Runs `body` once a slot is free.
    nonisolated func withSlot<Result>(_ body: () async throws -> Result) async throws -> Result {
        await acquire()
        do {
            let result = try await body()
            await release()
            return result
        } catch {
            await release()
            throw error
        }
    }

    private func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    private func release() {
        if waiters.isEmpty { available += 1 } else { waiters.removeFirst().resume() }
    }
}
