import Foundation

/// What the end-to-end tests need from outside: the built `signal-worker`, and the databases
/// `scripts/test` prepares (a migrated SQLite template, a migrated PostgreSQL database).
enum TestEnvironment {
    /// `SIGNAL_WORKER_TEST_DJANGO_SQLITE`: a SQLite file Django migrated. Copy it, never write it.
    static var djangoSQLiteTemplate: String? {
        guard let path = variable("SIGNAL_WORKER_TEST_DJANGO_SQLITE") else { return nil }
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// `SIGNAL_WORKER_TEST_POSTGRES_URL`: `postgres://postgres@127.0.0.1:PORT/signal_worker_test`, Django-migrated.
    static var postgresURL: String? { variable("SIGNAL_WORKER_TEST_POSTGRES_URL") }

    /// True when the PostgreSQL tests can run; prints a loud line when they cannot.
    static func postgresAvailable(_ test: String) -> Bool {
        if postgresURL != nil { return true }
        print("SKIPPING \(test): SIGNAL_WORKER_TEST_POSTGRES_URL is not set (scripts/test sets it; see its header)")
        return false
    }

    /// `SIGNAL_WORKER_TEST_PGBOUNCER_URL`: `postgres://postgres@127.0.0.1:PORT`, a PgBouncer in
    /// session pooling mode in front of the server of ``postgresURL`` (append `/DATABASE`).
    static var pgbouncerURL: String? { variable("SIGNAL_WORKER_TEST_PGBOUNCER_URL") }

    /// True when the PgBouncer test can run; prints a loud line when it cannot.
    static func pgbouncerAvailable(_ test: String) -> Bool {
        if postgresURL != nil, pgbouncerURL != nil { return true }
        print("SKIPPING \(test): SIGNAL_WORKER_TEST_PGBOUNCER_URL or SIGNAL_WORKER_TEST_POSTGRES_URL is not set (scripts/test sets both)")
        return false
    }

    /// True when the Django SQLite template exists; prints a loud line when it does not.
    static func djangoSQLiteAvailable(_ test: String) -> Bool {
        if djangoSQLiteTemplate != nil { return true }
        print("SKIPPING \(test): SIGNAL_WORKER_TEST_DJANGO_SQLITE is not set or missing (scripts/test sets it)")
        return false
    }

    /// The `signal-worker` executable `swift build` put next to the test bundle.
    static func workerBinary() throws -> URL { try workerBinaryLookup.get() }

    private static let workerBinaryLookup: Result<URL, TestFailure> = {
        var candidates: [URL] = []
        if let executable = Bundle.main.executableURL {
            candidates.append(executable.deletingLastPathComponent().appendingPathComponent("signal-worker"))
        }
        // macOS runs tests from an .xctest bundle inside the build directory.
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("signal-worker"))
        candidates.append(packageRoot.appendingPathComponent(".build/debug/signal-worker"))
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate.path) {
            warnIfStale(candidate)
            return .success(candidate)
        }
        return .failure(TestFailure(
            "the signal-worker executable was not found (looked at \(candidates.map(\.path).joined(separator: ", "))); "
                + "build it first: `swift build` (scripts/test does it before `swift test`)"))
    }()

    /// The package's root directory (…/Tests/SignalWorkerTests/Support/ → …/).
    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
    }

    private static func variable(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// A worker older than its sources is almost always a forgotten `swift build`: say so.
    private static func warnIfStale(_ binary: URL) {
        let manager = FileManager.default
        guard let built = (try? manager.attributesOfItem(atPath: binary.path))?[.modificationDate] as? Date,
            let files = manager.enumerator(atPath: packageRoot.appendingPathComponent("Sources").path)
        else { return }
        for case let file as String in files where file.hasSuffix(".swift") {
            let path = packageRoot.appendingPathComponent("Sources").appendingPathComponent(file).path
            if let modified = (try? manager.attributesOfItem(atPath: path))?[.modificationDate] as? Date, modified > built {
                print("WARNING: \(binary.path) is older than Sources/\(file); run `swift build` to test the current code")
                return
            }
        }
    }
}

/// A test-infrastructure failure with a readable message.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
