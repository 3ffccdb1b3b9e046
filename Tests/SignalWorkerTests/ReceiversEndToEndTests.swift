import Foundation
import GRDB
import Testing

/// `--receivers profile,drf-token`: the real worker runs both receivers on each user `post_save`,
/// in one transaction, over ZeroMQ, on a copy of Django's migrated SQLite database.
@Suite("several receivers end to end")
struct ReceiversEndToEndTests {
    @Test("a create writes a profile and a token, an update only the profile; a token conflict writes neither; metrics per receiver")
    func profileAndToken() async throws {
        let database = try await SQLiteFixture.make("e2e-receivers", receivers: "profile,drf-token")
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
            let created = try await client.request(messages.signal(user: 1, created: true))
            #expect(created.isOK("created"), "\(created)")
            #expect(created.receivers == ["profile": "created", "drf-token": "created"], "\(created)")
            let updated = try await client.request(messages.signal(user: 1, created: false))
            #expect(updated.receivers == ["profile": "updated", "drf-token": "skipped"], "\(updated)")
            let conflict = try await client.request(messages.signal(user: 3, created: true))
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
        let database = try await SQLiteFixture.make("e2e-receivers-missing", receivers: "profile,drf-token")
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

/// `outbox_check` through the real worker: the pong says whether it answers it, and a flagged
/// message behind an older row of the shim's outbox is answered `behind` (docs/PROTOCOL.md).
@Suite("outbox check end to end")
struct OutboxCheckEndToEndTests {
    @Test("with the shim's outbox table: the pong lists outbox_check, a message behind an older row is answered behind, others apply")
    func withOutbox() async throws {
        let database = try await SQLiteFixture.make("e2e-outbox")
        defer { database.remove() }
        try database.insertUsers(1...2)
        let queue = try database.open()
        try await queue.write { db in
            try db.execute(sql: "DROP TABLE IF EXISTS signal_bridge_outbox")
            try db.execute(sql: "CREATE TABLE signal_bridge_outbox (seq integer NOT NULL PRIMARY KEY, sender varchar(100) NOT NULL, object_pk varchar(255) NOT NULL)")
            try db.execute(sql: "INSERT INTO signal_bridge_outbox (seq, sender, object_pk) VALUES (4, 'auth.user', '2')")
        }
        let messages = Messages()
        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            let pong = try await client.request(messages.ping())
            #expect(pong.isOK("pong") && pong.features == ["outbox_check"], "\(pong)")
            let behind = try await client.request(messages.signal(user: 2, created: true, outboxCheck: true))
            #expect(behind.isError("behind") && behind.field == "outbox_check" && behind.retryable == true, "\(behind)")
            let created = try await client.request(messages.signal(user: 1, created: true, outboxCheck: true))
            #expect(created.isOK("created"), "\(created)")
            // The older row sent and gone: the same message (same id) applies.
            try await queue.write { db in try db.execute(sql: "DELETE FROM signal_bridge_outbox") }
            let again = try await client.request(messages.signal(id: behind.id, user: 2, created: true, outboxCheck: true))
            #expect(again.isOK("created"), "\(again)")
        }
        let profiles = try await queue.read { db in try Int.fetchAll(db, sql: "SELECT user_id FROM accounts_userprofile ORDER BY user_id") }
        #expect(profiles == [1, 2])
    }

    @Test("without the outbox table: no feature in the pong, outbox_check refused as unsupported, the start says why")
    func withoutOutbox() async throws {
        let database = try await SQLiteFixture.make("e2e-no-outbox")
        defer { database.remove() }
        try database.insertUsers(1...1)
        let queue = try database.open()
        try await queue.write { db in try db.execute(sql: "DROP TABLE IF EXISTS signal_bridge_outbox") }
        let messages = Messages()
        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            let pong = try await client.request(messages.ping())
            #expect(pong.isOK("pong") && pong.features == nil && !pong.raw.contains("features"), "\(pong)")
            let refused = try await client.request(messages.signal(user: 1, created: true, outboxCheck: true))
            #expect(refused.isError("unsupported") && refused.field == "outbox_check" && refused.retryable == false, "\(refused)")
            #expect(try await client.request(messages.signal(user: 1, created: true)).isOK("created"))
            #expect(worker.logs.contains { $0.message.contains("outbox_check off") }, "\(worker.logs)")
        }
    }
}
