import Foundation
import GRDB

/// A profile row as the tests compare it.
struct ProfileRow: Sendable, Equatable, CustomStringConvertible {
    var profileType: String
    var sex: String?
    var birthdate: String?

    var description: String { "(\(profileType), \(sex ?? "NULL"), \(birthdate ?? "NULL"))" }
}

/// One test's SQLite database in its own temporary directory: a copy of Django's migrated template
/// (`SIGNAL_WORKER_TEST_DJANGO_SQLITE`), or, without it, tables made by `signal-worker check --create-schema`.
struct SQLiteFixture: Sendable {
    /// The test's directory (removed by ``remove()``).
    let directory: URL
    /// The database file.
    let path: String

    /// `sqlite:///…` for `--store`.
    var storeURL: String { "sqlite://\(path)" }

    /// Creates the directory and the database; without Django's template, the tables of
    /// `receivers` (`--receivers`, the worker's default when `nil`) are made by `--create-schema`.
    static func make(_ label: String = "e2e", receivers: String? = nil) async throws -> SQLiteFixture {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("signal-worker-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("db.sqlite3").path
        if let template = TestEnvironment.djangoSQLiteTemplate {
            try FileManager.default.copyItem(atPath: template, toPath: path)
        } else {
            print("NOTE: SIGNAL_WORKER_TEST_DJANGO_SQLITE not set: \(label) uses `signal-worker check --create-schema`")
            let result = try await ChildProcess.runWorkerCommand(
                ["check", "--store", "sqlite://\(path)", "--create-schema"] + (receivers.map { ["--receivers", $0] } ?? []))
            guard result.exit == .init(status: 0, signalled: false) else {
                throw TestFailure("check --create-schema failed (\(result.exit)): \(result.output)")
            }
        }
        return SQLiteFixture(directory: directory, path: path)
    }

    /// An empty directory of its own, for tests that make their files themselves.
    static func emptyDirectory(_ label: String) throws -> URL {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("signal-worker-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory
    }

    /// Deletes the directory.
    func remove() {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Opens the database (busy timeout: the worker may hold the write lock).
    func open() throws -> DatabaseQueue {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        return try DatabaseQueue(path: path, configuration: configuration)
    }

    /// Inserts `auth_user` rows with every NOT NULL column, as `createuser` would.
    func insertUsers(_ ids: some Sequence<Int>) throws {
        try open().write { db in
            let statement = try db.makeStatement(
                sql: """
                    INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, \
                    is_staff, is_active, date_joined) VALUES (?, '!', 0, ?, '', '', '', 0, 1, '2026-11-25 13:00:00')
                    """)
            for id in ids { try statement.execute(arguments: [id, "user\(id)"]) }
        }
    }

    /// The profile of `user`, if any.
    func profile(user: Int) throws -> ProfileRow? {
        try profiles()[user]
    }

    /// Every profile by user id.
    func profiles() throws -> [Int: ProfileRow] {
        try open().read { db in
            var rows: [Int: ProfileRow] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT user_id, profile_type, sex, birthdate FROM accounts_userprofile")
            {
                rows[row["user_id"]] = ProfileRow(
                    profileType: row["profile_type"], sex: row["sex"], birthdate: row["birthdate"])
            }
            return rows
        }
    }

    /// The names of the tables in the file.
    func tableNames() throws -> Set<String> {
        try open().read { db in try String.fetchSet(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") }
    }

    /// The ids in `signal_worker_applied`.
    func appliedIDs() throws -> Set<String> {
        try open().read { db in try String.fetchSet(db, sql: "SELECT message_id FROM signal_worker_applied") }
    }
}
