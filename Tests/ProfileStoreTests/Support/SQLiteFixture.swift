import Foundation
import GRDB
import DRFTokenReceiver
import ProfileReceiver
import SignalInbox
@testable import SignalStoreSQLite

/// An SQLite store on a file of its own: a copy of Django's migrated database when
/// `SIGNAL_WORKER_TEST_DJANGO_SQLITE` is set, else the Django-compatible schema.
struct SQLiteFixture: StoreFixture {
    let directory: URL
    let path: String
    let sqliteStore: SQLiteSignalStore
    let inbox: Inbox
    /// A second connection, as Django's would be.
    let helper: DatabaseQueue

    var kind: StoreKind { .sqlite }
    var store: any SignalStore { sqliteStore }

    /// A fresh database path in a fresh temp directory, holding Django's schema (copied or created).
    static func makeDatabase(in directory: URL, djangoSchema: Bool = true) async throws -> String {
        let path = directory.appendingPathComponent("db.sqlite3").path
        if djangoSchema, let template = TestEnvironment.djangoSQLiteTemplate {
            try FileManager.default.copyItem(atPath: template, toPath: path)
        } else if djangoSchema {
            let store = try SQLiteSignalStore(configuration: SQLiteStoreConfiguration(path: path, createIfMissing: true))
            try await store.createTables(TestInbox.profileAndToken().djangoCompatibleDDL(.sqlite))
            try store.close()
        }
        return path
    }

    /// Runs `body` with a fresh fixture.
    static func with(
        djangoSchema: Bool = true, profile: ProfileReceiverConfiguration = ProfileReceiverConfiguration(),
        configure: (inout SQLiteStoreConfiguration) -> Void = { _ in },
        _ body: (SQLiteFixture) async throws -> Void
    ) async throws {
        let directory = try TestEnvironment.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = try await makeDatabase(in: directory, djangoSchema: djangoSchema)
        var configuration = SQLiteStoreConfiguration(path: path, createIfMissing: true)
        configure(&configuration)
        let store = try SQLiteSignalStore(configuration: configuration)
        if djangoSchema {
            // DRF's token table, as its migrations create it (if the template had none).
            try await store.createTables(DRFTokenReceiver().djangoCompatibleDDL(.sqlite))
        }
        try await store.prepareWorkerTables()
        var helperConfiguration = Configuration()
        helperConfiguration.busyMode = .timeout(5)
        let helper = try DatabaseQueue(path: path, configuration: helperConfiguration)
        let fixture = SQLiteFixture(
            directory: directory, path: path, sqliteStore: store, inbox: TestInbox.profile(profile), helper: helper)
        try await body(fixture)
        try helper.close()
        try store.close()
    }

    func execute(_ sql: String) async throws {
        try await helper.write { db in try db.execute(sql: sql) }
    }

    func addUsers(_ ids: [Int64]) async throws {
        try await helper.write { db in
            for id in ids {
                try db.execute(
                    sql: """
                        INSERT INTO "auth_user" ("id", "password", "last_login", "is_superuser", "username", "first_name", \
                        "last_name", "email", "is_staff", "is_active", "date_joined") \
                        VALUES (?, '', NULL, 0, ?, '', '', '', 0, 1, '2026-01-01 00:00:00')
                        """,
                    arguments: [id, "user\(id)"])
            }
        }
    }

    func addProfiles(_ rows: [StoredProfile]) async throws {
        try await helper.write { db in
            for row in rows {
                try db.execute(
                    sql: """
                        INSERT INTO "accounts_userprofile" ("user_id", "profile_type", "sex", "birthdate") VALUES (?, ?, ?, ?)
                        """,
                    arguments: [row.userID, row.profileType, row.sex, row.birthdate])
            }
        }
    }

    func addApplied(_ ids: [String], ageSeconds: Double) async throws {
        let appliedAt = Date().timeIntervalSince1970 - ageSeconds
        try await helper.write { db in
            for id in ids {
                try db.execute(
                    sql: "INSERT INTO \"signal_worker_applied\" (\"message_id\", \"applied_at\") VALUES (?, ?)",
                    arguments: [id, appliedAt])
            }
        }
    }

    func addToken(userID: Int64, key: String) async throws {
        try await helper.write { db in
            try db.execute(
                sql: "INSERT INTO \"authtoken_token\" (\"key\", \"created\", \"user_id\") VALUES (?, '2026-01-01 00:00:00', ?)",
                arguments: [key, userID])
        }
    }

    func tokens() async throws -> [Int64: String] {
        try await helper.read { db in
            var tokens: [Int64: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT \"user_id\", \"key\" FROM \"authtoken_token\"") {
                tokens[row[0]] = row[1]
            }
            return tokens
        }
    }

    func setSequences(_ sequences: [Int64: Int64]) async throws {
        try await helper.write { db in
            for (user, sequence) in sequences {
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO "signal_worker_object_sequence" ("sender", "object_pk", "last_seq") \
                        VALUES ('auth.user', ?, ?)
                        """,
                    arguments: [String(user), sequence])
            }
        }
    }

    func profiles() async throws -> [StoredProfile] {
        try await helper.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT "user_id", "profile_type", "sex", "birthdate" FROM "accounts_userprofile" ORDER BY "user_id"
                    """
            ).map { row in
                StoredProfile(userID: row[0], profileType: row[1], sex: row[2], birthdate: row[3])
            }
        }
    }

    func appliedIDs() async throws -> Set<String> {
        try await helper.read { db in
            Set(try String.fetchAll(db, sql: "SELECT \"message_id\" FROM \"signal_worker_applied\""))
        }
    }

    func sequences() async throws -> [Int64: Int64] {
        try await helper.read { db in
            var result: [Int64: Int64] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT \"object_pk\", \"last_seq\" FROM \"signal_worker_object_sequence\" WHERE \"sender\" = 'auth.user'")
            {
                result[Int64(row[0] as String)!] = row[1]
            }
            return result
        }
    }

    func refuseSex(_ value: String) async throws {
        try await helper.write { db in
            for event in ["INSERT", "UPDATE"] {
                try db.execute(
                    sql: """
                        CREATE TRIGGER "refuse_sex_\(event.lowercased())" BEFORE \(event) ON "accounts_userprofile" \
                        WHEN NEW."sex" = '\(value.replacingOccurrences(of: "'", with: "''"))' \
                        BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END
                        """)
            }
        }
    }
}
