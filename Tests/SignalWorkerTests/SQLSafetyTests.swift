import Foundation
import GRDB
import PostgresNIO
import Testing

/// SQL injection through every configurable name and every message field: names are refused
/// at start-up unless they are plain identifiers, values are bound parameters and arrive verbatim.
@Suite("SQL safety")
struct SQLSafetyTests {
    static let hostileNames = [
        #"accounts_userprofile"; DROP TABLE auth_user; --"#,
        "auth_user WHERE 1=1",
        "x'); DROP TABLE auth_user; --",
        "1table",
        "",
        String(repeating: "a", count: 64),
        "caf\u{E9}",
    ]

    @Test("a table name that is not a plain identifier is refused by serve and check, naming the option; nothing is touched")
    func hostileTableNames() async throws {
        let database = try await SQLiteFixture.make("sql-names")
        defer { database.remove() }
        let tablesBefore = try database.tableNames()
        for name in Self.hostileNames {
            for option in ["--profile-table", "--user-table"] {
                for command in [["serve", "--bind", "tcp://127.0.0.1:*"], ["check"]] {
                    let result = try await ChildProcess.runWorkerCommand(command + ["--store", database.storeURL, option, name])
                    #expect(result.exit == CommandLineTests.failure, "\(command) \(option) \(name.debugDescription): \(result.output)")
                    #expect(result.output.contains("\(option)") && result.output.contains("not a plain table name"), "\(result.output)")
                }
            }
        }
        #expect(try database.tableNames() == tablesBefore, "a refused start must not create or drop tables")
    }

    @Test("SQL in message fields is stored verbatim as data on SQLite and on PostgreSQL")
    func hostileValues() async throws {
        let payloads = ["');DROP TABLE x;--", "\" OR 1=1 --", "x\\'; --", "$1::text", "%s%s%n"]
        let sqlite = try await SQLiteFixture.make("sql-values")
        defer { sqlite.remove() }
        try sqlite.insertUsers(1...payloads.count)
        try await withWorker(WorkerProcess.serveArguments(store: sqlite.storeURL, metrics: false)) { worker in
            try await Self.send(payloads, to: worker)
        }
        for (index, payload) in payloads.enumerated() {
            #expect(try sqlite.profile(user: index + 1)?.profileType == payload)
        }
        #expect(try sqlite.tableNames().isSuperset(of: ["auth_user", "accounts_userprofile"]))

        guard TestEnvironment.postgresAvailable("SQL in message fields on PostgreSQL") else { return }
        let postgres = try await PostgresFixture.make()
        do {
            try await postgres.insertUsers(Array(1...payloads.count))
            try await withWorker(WorkerProcess.serveArguments(store: postgres.storeURL, metrics: false)) { worker in
                try await Self.send(payloads, to: worker)
            }
            let profiles = try await postgres.profiles()
            for (index, payload) in payloads.enumerated() {
                #expect(profiles[index + 1]?.profileType == payload)
            }
        } catch {
            await postgres.drop()
            throw error
        }
        await postgres.drop()
    }

    /// Creates one profile per payload (user n gets payload n-1 as profile_type and in `sex`,
    /// which is one character long in the schema: SQLite stores it, PostgreSQL refuses it).
    static func send(_ payloads: [String], to worker: WorkerProcess) async throws {
        let client = try TestClient(worker.endpoint)
        defer { client.close() }
        let messages = Messages()
        for (index, payload) in payloads.enumerated() {
            let reply = try await client.request(messages.signal(user: index + 1, created: true, data: ["profile_type": payload]))
            #expect(reply.isOK("created"), "\(payload): \(reply)")
            let refused = try await client.request(messages.signal(user: index + 1, created: false, data: ["birthdate": payload]))
            #expect(refused.isError("invalid_value") && refused.field == "birthdate", "\(payload): \(refused)")
        }
    }
}
