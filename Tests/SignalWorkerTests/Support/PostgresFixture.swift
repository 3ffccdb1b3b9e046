import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import PostgresNIO

/// A fresh PostgreSQL database for one test, copied from the Django-migrated database of
/// `SIGNAL_WORKER_TEST_POSTGRES_URL`, dropped by ``drop()``.
///
/// `CREATE DATABASE … TEMPLATE` fails while anyone is connected to the template, and other suites
/// connect to `signal_worker_test`: so this process copies it once, with retries, into a private
/// template nobody connects to, and every test copies that one.
struct PostgresFixture: Sendable {
    /// The database's name.
    let database: String
    /// Where the server is.
    let server: PostgresServer

    /// `postgres://…/<database>` for `--store`.
    var storeURL: String { server.url(database: database) }

    /// Creates a fresh migrated database.
    static func make() async throws -> PostgresFixture {
        let server = try PostgresServer.fromEnvironment()
        let template = try await privateTemplate.value
        let database = "signal_worker_e2e_\(UUID().uuidString.prefix(8).lowercased())"
        try await server.withConnection(database: "postgres") { connection in
            _ = try await connection.query(
                "CREATE DATABASE \(unescaped: quoted(database)) TEMPLATE \(unescaped: quoted(template))",
                logger: .quiet)
        }
        return PostgresFixture(database: database, server: server)
    }

    /// The per-process copy of the migrated database (made once, on first use).
    private static let privateTemplate = Task<String, any Error> {
        let server = try PostgresServer.fromEnvironment()
        let name = "signal_worker_e2e_template_\(ProcessInfo.processInfo.processIdentifier)"
        try await server.dropLeftoverTemplates()
        let deadline = ContinuousClock.now + .seconds(60)
        while true {
            // Other suites keep connections to the migrated database open while they run; then
            // CREATE DATABASE … TEMPLATE waits 5 s and fails (55006). Copy the schema with pg_dump instead.
            if try await server.sessionCount(on: server.database) == 0 {
                do {
                    try await server.withConnection(database: "postgres") { connection in
                        _ = try await connection.query(
                            "CREATE DATABASE \(unescaped: quoted(name)) TEMPLATE \(unescaped: quoted(server.database))",
                            logger: .quiet)
                    }
                    return name
                } catch let error as PSQLError where error.serverInfo?[.sqlState] == "55006" {}
            }
            if let pgDump = PostgresServer.clientTool("pg_dump"), let psql = PostgresServer.clientTool("psql") {
                try await server.copySchema(into: name, pgDump: pgDump, psql: psql)
                return name
            }
            guard ContinuousClock.now < deadline else {
                throw TestFailure("could not copy \(server.database): other sessions stayed connected to it for 60 s")
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 100...500)))
        }
    }

    /// Drops the database (connections of a worker that was killed are ended by FORCE).
    func drop() async {
        _ = try? await server.withConnection(database: "postgres") { connection in
            _ = try await connection.query("DROP DATABASE IF EXISTS \(unescaped: quoted(database)) WITH (FORCE)", logger: .quiet)
        }
    }

    /// Runs `body` on a new connection to the test database.
    func withConnection<T: Sendable>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await server.withConnection(database: database, body)
    }

    /// Inserts `auth_user` rows with every NOT NULL column.
    func insertUsers(_ ids: [Int]) async throws {
        try await withConnection { connection in
            _ = try await connection.query(
                """
                INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email,
                    is_staff, is_active, date_joined)
                SELECT g, '!', false, 'user' || g, '', '', '', false, true, now() FROM unnest(\(ids)::bigint[]) AS g
                """, logger: .quiet)
        }
    }

    /// Every profile by user id.
    func profiles() async throws -> [Int: ProfileRow] {
        try await withConnection { connection in
            var result: [Int: ProfileRow] = [:]
            let rows = try await connection.query(
                "SELECT user_id::bigint, profile_type, sex, birthdate::text FROM accounts_userprofile", logger: .quiet)
            for try await row in rows {
                let (user, type, sex, birthdate) = try row.decode((Int, String, String?, String?).self)
                result[user] = ProfileRow(profileType: type, sex: sex, birthdate: birthdate)
            }
            return result
        }
    }

    /// The ids in `signal_worker_applied`.
    func appliedIDs() async throws -> Set<String> {
        try await withConnection { connection in
            var result: Set<String> = []
            let rows = try await connection.query("SELECT message_id FROM signal_worker_applied", logger: .quiet)
            for try await row in rows { result.insert(try row.decode(String.self)) }
            return result
        }
    }
}

/// The server of `SIGNAL_WORKER_TEST_POSTGRES_URL`.
struct PostgresServer: Sendable {
    var host: String
    var port: Int
    var username: String
    var password: String?
    /// The migrated database named in the URL.
    var database: String

    static func fromEnvironment() throws -> PostgresServer {
        guard let text = TestEnvironment.postgresURL, let url = URLComponents(string: text), let host = url.host,
            let username = url.user
        else {
            throw TestFailure("SIGNAL_WORKER_TEST_POSTGRES_URL is not a postgres://user@host:port/db URL")
        }
        let database = url.path.hasPrefix("/") ? String(url.path.dropFirst()) : url.path
        guard !database.isEmpty else { throw TestFailure("SIGNAL_WORKER_TEST_POSTGRES_URL names no database") }
        return PostgresServer(host: host, port: url.port ?? 5432, username: username, password: url.password, database: database)
    }

    /// The URL of another database on this server.
    func url(database: String) -> String {
        let credentials = password.map { "\(username):\($0)" } ?? username
        return "postgres://\(credentials)@\(host):\(port)/\(database)"
    }

    /// Drops the private templates of test processes that are gone (the server is local: 127.0.0.1).
    func dropLeftoverTemplates() async throws {
        let prefix = "signal_worker_e2e_template_"
        try await withConnection(database: "postgres") { connection in
            let rows = try await connection.query(
                "SELECT datname FROM pg_database WHERE starts_with(datname, \(prefix))", logger: .quiet)
            var stale: [String] = []
            for try await row in rows {
                let name = try row.decode(String.self)
                guard let pid = Int32(name.dropFirst(prefix.count)) else { continue }
                if pid == ProcessInfo.processInfo.processIdentifier || (kill(pid, 0) != 0 && errno == ESRCH) {
                    stale.append(name)
                }
            }
            for name in stale {
                _ = try await connection.query("DROP DATABASE IF EXISTS \(unescaped: quoted(name)) WITH (FORCE)", logger: .quiet)
            }
        }
    }

    /// Sessions connected to `database`.
    func sessionCount(on database: String) async throws -> Int {
        try await withConnection(database: "postgres") { connection in
            let rows = try await connection.query(
                "SELECT count(*)::bigint FROM pg_stat_activity WHERE datname = \(database)", logger: .quiet)
            var count = 0
            for try await row in rows { count = try row.decode(Int.self) }
            return count
        }
    }

    /// Creates `target` empty and loads the schema of the migrated database into it with
    /// `pg_dump --schema-only | psql` (which, unlike a template copy, works while others are connected).
    func copySchema(into target: String, pgDump: String, psql: String) async throws {
        try await withConnection(database: "postgres") { connection in
            _ = try await connection.query("CREATE DATABASE \(unescaped: quoted(target))", logger: .quiet)
        }
        let dump = FileManager.default.temporaryDirectory.appendingPathComponent("signal-worker-e2e-\(UUID()).sql")
        defer { try? FileManager.default.removeItem(at: dump) }
        let environment = password.map { ["PGPASSWORD": $0] } ?? [:]
        for (tool, arguments) in [
            (pgDump, ["--schema-only", "--no-owner", "--no-privileges", "--file", dump.path, "--dbname", url(database: database)]),
            (psql, ["--quiet", "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "--file", dump.path, "--dbname", url(database: target)]),
        ] {
            let child = try ChildProcess(URL(fileURLWithPath: tool), arguments, environment: environment)
            defer { child.killNow() }
            guard let exit = await child.waitForExit(timeout: .seconds(60)), exit == .init(status: 0, signalled: false) else {
                throw TestFailure("\(child.commandLine) failed: \(child.text(.standardError))")
            }
        }
    }

    /// A PostgreSQL client program: the newest installed under /usr/lib/postgresql (pg_dump must not be
    /// older than the server), else the one on PATH.
    static func clientTool(_ name: String) -> String? {
        let manager = FileManager.default
        let versions = ((try? manager.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []).compactMap(Int.init).sorted()
        var candidates = versions.reversed().map { "/usr/lib/postgresql/\($0)/bin/\(name)" }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        candidates += path.split(separator: ":").map { "\($0)/\(name)" }
        return candidates.first { manager.isExecutableFile(atPath: $0) }
    }

    /// Runs `body` on a new connection to `database`, closed afterwards.
    func withConnection<T: Sendable>(database: String, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        let configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: .disable)
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: .quiet)
        do {
            let result = try await body(connection)
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }
}

/// A quoted SQL identifier.
private func quoted(_ identifier: String) -> String {
    "\"" + identifier.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

extension Logger {
    /// A logger that prints nothing (the test process does not bootstrap logging).
    static let quiet = Logger(label: "signal-worker-e2e", factory: { _ in SwiftLogNoOpLogHandler() })
}
