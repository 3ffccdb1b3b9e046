import Foundation
import GRDB
import Testing

/// `--receivers profile,drf-token`: the real worker runs both receivers on each user `post_save`,
/// in one transaction, over ZeroMQ, on a copy of Django's migrated SQLite database.
@Suite("several receivers end to end")
struct ReceiversEndToEndTests {
    @Test("a create writes a profile and a token, an update only the profile; a token conflict writes neither; metrics per receiver")
    func profileAndToken() async throws {
        let database = try await SQLiteFixture.make("e2e-receivers")
        defer { database.remove() }
        try database.insertUsers(1...3)
        let queue = try database.open()
        try await queue.write { db in
            try db.execute(
                sql: "INSERT INTO authtoken_token (key, created, user_id) VALUES ('0123456789abcdef0123456789abcdef01234567', '2026-01-01 00:00:00', 3)")
        }
        let messages = Messages()
        let arguments = WorkerProcess.serveArguments(store: database.storeURL, extra: ["--receivers", "profile,drf-token"])
        try await withWorker(arguments) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            let created = try client.request(messages.signal(user: 1, created: true))
            #expect(created.isOK("created"), "\(created)")
            #expect(created.receivers == ["profile": "created", "drf-token": "created"], "\(created)")
            let updated = try client.request(messages.signal(user: 1, created: false))
            #expect(updated.receivers == ["profile": "updated", "drf-token": "skipped"], "\(updated)")
            let conflict = try client.request(messages.signal(user: 3, created: true))
            #expect(conflict.isError("conflict") && conflict.errorReceiver == "drf-token", "\(conflict)")

            let url = try #require(worker.metricsURL.flatMap(URL.init(string:)))
            let (_, text) = try await MetricsEndpointTests.get(url)
            let samples = PrometheusSamples(text)
            #expect(samples.value("signal_worker_receiver_actions_total", ["receiver": "drf-token", "action": "created"]) == 1, "\(text)")
            #expect(samples.value("signal_worker_receiver_actions_total", ["receiver": "drf-token", "action": "skipped"]) == 1)
            #expect(samples.value("signal_worker_receiver_actions_total", ["receiver": "profile", "action": "updated"]) == 1)
        }
        let tokens = try queue.read { db in
            try Row.fetchAll(db, sql: "SELECT user_id, key, created FROM authtoken_token ORDER BY user_id")
        }
        #expect(tokens.map { $0["user_id"] as Int } == [1, 3])
        let key: String = tokens[0]["key"]
        #expect(key.count == 40 && key.allSatisfy { $0.isHexDigit && !$0.isUppercase }, "\(key)")
        let createdAt: String = tokens[0]["created"]
        #expect(createdAt.range(of: #"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$"#, options: .regularExpression) != nil, "\(createdAt)")
        #expect(try database.profile(user: 1) != nil)
        #expect(try database.profile(user: 3) == nil, "the refused message's profile was not written")
    }

    @Test("a receiver whose table is missing stops the start with the table named; an unknown receiver is refused")
    func missingTokenTable() async throws {
        let database = try await SQLiteFixture.make("e2e-receivers-missing")
        defer { database.remove() }
        try await database.open().write { db in try db.execute(sql: "DROP TABLE authtoken_token") }
        let result = try await ChildProcess.runWorkerCommand(["check", "--store", database.storeURL, "--receivers", "profile,drf-token"])
        #expect(result.exit == .init(status: 2, signalled: false), "\(result.output)")
        #expect(result.output.contains("authtoken_token") && result.output.contains("rest_framework.authtoken"), "\(result.output)")
        let profileOnly = try await ChildProcess.runWorkerCommand(["check", "--store", database.storeURL])
        #expect(profileOnly.exit == .init(status: 0, signalled: false), "\(profileOnly.output)")
        let unknown = try await ChildProcess.runWorkerCommand(["check", "--store", database.storeURL, "--receivers", "profile,nope"])
        #expect(unknown.exit != .init(status: 0, signalled: false))
        #expect(unknown.output.contains("unknown receiver \"nope\""), "\(unknown.output)")
    }
}
