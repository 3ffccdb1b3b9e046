import Foundation
import Logging
import PostgresNIO
import ProfileReceiver

import DRFTokenReceiver
import SignalInbox
@testable import SignalStorePostgres

/// Logs of the stores under test: errors only (connection retries log at info).
let testLogger: Logger = {
    var logger = Logger(label: "profile-store-tests")
    logger.logLevel = .error
    return logger
}()

/// A PostgreSQL store on a schema of its own in the test database: a copy of Django's
/// migrated tables from `public` (`CREATE TABLE ... (LIKE ... INCLUDING ALL)` plus the
/// deferred foreign key) when Django migrated the database, else the Django-compatible
/// schema. Tests run in parallel, each in its own schema; the schema is dropped afterwards.
struct PostgresFixture: StoreFixture {
    let schema: String
    let postgresStore: PostgresSignalStore
    let inbox: Inbox
    /// A second client (as Django's connection would be), `search_path` = the fixture's schema.
    let admin: PostgresClient

    var kind: StoreKind { .postgres }
    var store: any SignalStore { postgresStore }

    struct NotConfigured: Error {}

    /// The store configuration from `SIGNAL_WORKER_TEST_POSTGRES_URL`.
    static func baseConfiguration() throws -> PostgresStoreConfiguration {
        guard let url = TestEnvironment.postgresURL else { throw NotConfigured() }
        return try PostgresStoreConfiguration(url: url)
    }

    /// A plain client on the test database (for setup and inspection).
    static func makeAdminClient(searchPath: String?) throws -> PostgresClient {
        let base = try baseConfiguration()
        var configuration = PostgresClient.Configuration(
            host: base.host, port: base.port, username: base.username, password: base.password, database: base.database,
            tls: .disable)
        configuration.options.maximumConnections = 2
        // A lock that never comes (a session left idle in a transaction) fails the clean-up
        // instead of hanging the test run.
        configuration.options.additionalStartupParameters = [("lock_timeout", "60s")]
        if let searchPath { configuration.options.additionalStartupParameters.append(("search_path", searchPath)) }
        return PostgresClient(configuration: configuration, backgroundLogger: testLogger)
    }

    /// Runs `body` with a store whose `run()` is running, on a fresh schema.
    static func with(
        djangoSchema: Bool = true, profile: ProfileReceiverConfiguration = ProfileReceiverConfiguration(),
        configure: (inout PostgresStoreConfiguration) -> Void = { _ in },
        _ body: (PostgresFixture) async throws -> Void
    ) async throws {
        let schema = "swtest_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        var configuration = try baseConfiguration()
        configuration.searchPath = schema
        configure(&configuration)
        let store = PostgresSignalStore(configuration: configuration, logger: testLogger)
        let admin = try makeAdminClient(searchPath: schema)
        let fixture = PostgresFixture(schema: schema, postgresStore: store, inbox: TestInbox.profile(profile), admin: admin)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await store.run() }
            // Bounded like the store's own pool: a clean-up must not wait for good on a pool
            // that does not end (see BoundedStop).
            group.addTask { _ = await BoundedStop.run({ await admin.run() }, stopTimeout: .seconds(5)) }
            defer { group.cancelAll() }
            var failure: (any Error)?
            do {
                try await fixture.createSchema(djangoSchema: djangoSchema)
                if djangoSchema {
                    // DRF's token table, as its migrations create it (if the template had none).
                    try await store.createTables(DRFTokenReceiver().djangoCompatibleDDL(.postgres))
                }
                try await store.prepareWorkerTables()
                try await body(fixture)
            } catch {
                failure = error
            }
            try? await fixture.execute("DROP SCHEMA \"\(schema)\" CASCADE")
            if let failure { throw failure }
        }
    }

    func execute(_ sql: String) async throws {
        _ = try await admin.query(PostgresQuery(unsafeSQL: sql)).collect()
    }

    func query(_ query: PostgresQuery) async throws -> [PostgresRow] {
        try await admin.query(query).collect()
    }

    private func createSchema(djangoSchema: Bool) async throws {
        try await execute("CREATE SCHEMA \"\(schema)\"")
        guard djangoSchema else { return }
        var migrated = false
        for try await value in try await admin.query(
            "SELECT to_regclass('public.accounts_userprofile') IS NOT NULL AND to_regclass('public.auth_user') IS NOT NULL"
        ).decode(Bool.self) {
            migrated = value
        }
        if migrated {
            try await execute("CREATE TABLE \"\(schema)\".\"auth_user\" (LIKE \"public\".\"auth_user\" INCLUDING ALL)")
            try await execute(
                "CREATE TABLE \"\(schema)\".\"accounts_userprofile\" (LIKE \"public\".\"accounts_userprofile\" INCLUDING ALL)")
            try await execute(
                """
                ALTER TABLE "\(schema)"."accounts_userprofile" ADD CONSTRAINT "accounts_userprofile_user_id_fk_auth_user_id" \
                FOREIGN KEY ("user_id") REFERENCES "\(schema)"."auth_user" ("id") DEFERRABLE INITIALLY DEFERRED
                """)
        } else {
            // Django 5.2's DDL (the store's createDjangoCompatibleSchema() is tested on its own).
            try await execute(
                """
                CREATE TABLE "auth_user" ("id" integer NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, \
                "password" varchar(128) NOT NULL, "last_login" timestamp with time zone NULL, \
                "is_superuser" boolean NOT NULL, "username" varchar(150) NOT NULL UNIQUE, \
                "first_name" varchar(150) NOT NULL, "last_name" varchar(150) NOT NULL, "email" varchar(254) NOT NULL, \
                "is_staff" boolean NOT NULL, "is_active" boolean NOT NULL, "date_joined" timestamp with time zone NOT NULL)
                """)
            try await execute(
                """
                CREATE TABLE "accounts_userprofile" ("id" bigint NOT NULL PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, \
                "profile_type" varchar(20) NOT NULL, "sex" varchar(1) NULL, "birthdate" date NULL, \
                "user_id" integer NOT NULL UNIQUE)
                """)
            try await execute(
                """
                ALTER TABLE "accounts_userprofile" ADD CONSTRAINT "accounts_userprofile_user_id_fk_auth_user_id" \
                FOREIGN KEY ("user_id") REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED
                """)
        }
    }

    func addUsers(_ ids: [Int64]) async throws {
        _ = try await admin.query(
            """
            INSERT INTO "auth_user" ("id", "password", "is_superuser", "username", "first_name", "last_name", "email", \
            "is_staff", "is_active", "date_joined") \
            SELECT u, '', false, 'user' || u, '', '', '', false, true, now() FROM unnest(\(ids)::int8[]) AS u
            """
        ).collect()
    }

    func addProfiles(_ rows: [StoredProfile]) async throws {
        for row in rows {
            _ = try await admin.query(
                """
                INSERT INTO "accounts_userprofile" ("user_id", "profile_type", "sex", "birthdate") \
                VALUES (\(row.userID), \(row.profileType), \(row.sex), \(row.birthdate)::date)
                """
            ).collect()
        }
    }

    func addApplied(_ ids: [String], ageSeconds: Double) async throws {
        _ = try await admin.query(
            """
            INSERT INTO "signal_worker_applied" ("message_id", "applied_at") \
            SELECT m, now() - make_interval(secs => \(ageSeconds)) FROM unnest(\(ids)::text[]) AS m
            """
        ).collect()
    }

    func addToken(userID: Int64, key: String) async throws {
        _ = try await admin.query(
            "INSERT INTO \"authtoken_token\" (\"key\", \"created\", \"user_id\") VALUES (\(key), now(), \(userID))"
        ).collect()
    }

    func tokens() async throws -> [Int64: String] {
        var tokens: [Int64: String] = [:]
        for try await (userID, key) in try await admin.query("SELECT \"user_id\"::int8, \"key\"::text FROM \"authtoken_token\"")
            .decode((Int64, String).self)
        {
            tokens[userID] = key
        }
        return tokens
    }

    func setSequences(_ sequences: [Int64: Int64]) async throws {
        for (user, sequence) in sequences {
            _ = try await admin.query(
                """
                INSERT INTO "signal_worker_object_sequence" ("sender", "object_pk", "last_seq") \
                VALUES ('auth.user', \(String(user)), \(sequence)) \
                ON CONFLICT ("sender", "object_pk") DO UPDATE SET "last_seq" = EXCLUDED."last_seq"
                """
            ).collect()
        }
    }

    func profiles() async throws -> [StoredProfile] {
        var result: [StoredProfile] = []
        for try await (user, profileType, sex, birthdate) in try await admin.query(
            """
            SELECT "user_id"::int8, "profile_type"::text, "sex"::text, to_char("birthdate", 'YYYY-MM-DD') \
            FROM "accounts_userprofile" ORDER BY "user_id"
            """
        ).decode((Int64, String, String?, String?).self) {
            result.append(StoredProfile(userID: user, profileType: profileType, sex: sex, birthdate: birthdate))
        }
        return result
    }

    func appliedIDs() async throws -> Set<String> {
        var result = Set<String>()
        for try await id in try await admin.query("SELECT \"message_id\" FROM \"signal_worker_applied\"").decode(String.self) {
            result.insert(id)
        }
        return result
    }

    func sequences() async throws -> [Int64: Int64] {
        var result: [Int64: Int64] = [:]
        for try await (user, sequence) in try await admin.query(
            "SELECT \"object_pk\"::int8, \"last_seq\" FROM \"signal_worker_object_sequence\" WHERE \"sender\" = 'auth.user'"
        ).decode((Int64, Int64).self) {
            result[user] = sequence
        }
        return result
    }

    func refuseSex(_ value: String) async throws {
        try await execute(
            """
            ALTER TABLE "accounts_userprofile" ADD CONSTRAINT "refuse_sex" \
            CHECK ("sex" IS DISTINCT FROM '\(value.replacingOccurrences(of: "'", with: "''"))')
            """)
    }
}
