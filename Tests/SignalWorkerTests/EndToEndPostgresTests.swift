import Foundation
import Testing
import ZeroMQ

/// The built `signal-worker serve` on a fresh copy of Django's PostgreSQL database.
@Suite(
    "signal-worker serve on PostgreSQL, end to end",
    .enabled(if: TestEnvironment.postgresAvailable("signal-worker serve on PostgreSQL, end to end")))
struct EndToEndPostgresTests {
    @Test("create, update, skip, duplicate, ping and an invalid date, checked in the tables")
    func coreScenario() async throws {
        let database = try await PostgresFixture.make()
        try await Self.run(database) {
            try await database.insertUsers([1, 2, 3])
            let messages = Messages()
            try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
                let client = try TestClient(worker.endpoint)
                defer { client.close() }

                let create = messages.signal(
                    user: 1, created: true, data: ["profile_type": "business", "sex": "F", "birthdate": "1990-01-02"])
                let created = try await client.request(create)
                #expect(created.isOK("created"), "\(created)")
                #expect(try await database.profiles()[1] == ProfileRow(profileType: "business", sex: "F", birthdate: "1990-01-02"))

                let update = messages.signal(user: 1, created: false, data: ["sex": nil, "birthdate": "2001-2-3"])
                let updated = try await client.request(update)
                #expect(updated.isOK("updated"), "\(updated)")
                #expect(try await database.profiles()[1] == ProfileRow(profileType: "business", sex: nil, birthdate: "2001-02-03"))

                let skip = messages.signal(user: 2, created: false)
                let skipped = try await client.request(skip)
                #expect(skipped.isOK("skipped"), "\(skipped)")

                let duplicate = try await client.request(create)
                #expect(duplicate.isOK("duplicate"), "\(duplicate)")

                let pong = try await client.request(messages.ping())
                #expect(pong.isOK("pong"), "\(pong)")

                let badDate = messages.signal(user: 3, created: true, data: ["birthdate": "2021-02-29"])
                let invalid = try await client.request(badDate)
                #expect(invalid.isError("invalid_value"), "\(invalid)")
                #expect(invalid.field == "birthdate")

                // PostgreSQL refuses what SQLite stores: text longer than varchar(1).
                let tooLong = try await client.request(messages.signal(user: 3, created: true, data: ["sex": "FF"]))
                #expect(tooLong.isError("invalid_value"), "\(tooLong)")
                #expect(tooLong.field == "sex")

                let profiles = try await database.profiles()
                #expect(profiles.keys.sorted() == [1], "only user 1 has a profile: \(profiles)")
                #expect(try await database.appliedIDs() == [create.id, update.id, skip.id])
            }
        }
    }

    @Test(
        "through PgBouncer (session pooling), as docs/DEPLOYMENT.md suggests: the worker connects and applies",
        .enabled(if: TestEnvironment.pgbouncerAvailable("the worker through PgBouncer")))
    func throughPgBouncer() async throws {
        let database = try await PostgresFixture.make()
        try await Self.run(database) {
            try await database.insertUsers([1, 2])
            let messages = Messages()
            // PgBouncer refuses a connection whose startup packet carries a parameter it does not
            // track ("unsupported startup parameter"): the worker must send none of those.
            let store = "\(TestEnvironment.pgbouncerURL!)/\(database.database)"
            try await withWorker(WorkerProcess.serveArguments(store: store)) { worker in
                let client = try TestClient(worker.endpoint)
                defer { client.close() }
                let create = messages.signal(user: 1, created: true, data: ["profile_type": "business", "sex": "F"])
                #expect(try await client.request(create).isOK("created"))
                let update = messages.signal(user: 1, created: false, data: ["birthdate": "1990-01-02"])
                #expect(try await client.request(update).isOK("updated"))
                // A batch of several messages (the batch statements, prepared on the pooled connection).
                let batch = [messages.signal(user: 2, created: true), messages.signal(user: 2, created: false, data: ["sex": "M"])]
                let replies = try await EndToEndSQLiteTests.pipeline(client, batch)
                #expect(batch.map { replies[$0.id]?.first?.action } == ["created", "updated"], "\(replies)")
                #expect(
                    try await database.profiles()
                        == [
                            1: ProfileRow(profileType: "business", sex: "F", birthdate: "1990-01-02"),
                            2: ProfileRow(profileType: "personal", sex: "M", birthdate: nil),
                        ])
            }
        }
    }

    @Test("one batch with a duplicate and failing messages: the others apply, each reply says what happened")
    func batchWithDuplicateAndFailure() async throws {
        let database = try await PostgresFixture.make()
        try await Self.run(database) {
            try await database.insertUsers([1, 2, 3])
            try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
                let client = try TestClient(worker.endpoint)
                defer { client.close() }
                let replies = try await EndToEndSQLiteTests.pipeline(client, EndToEndBatch.messages(Messages()))
                EndToEndBatch.check(replies)
                #expect(try await database.profiles() == EndToEndBatch.expectedProfiles)
                #expect(try await database.appliedIDs() == EndToEndBatch.expectedApplied)
            }
        }
    }

    @Test("batches in flight at the same time never reorder one user's messages (every seq applies, none is stale)")
    func concurrentBatchesKeepPerUserOrder() async throws {
        let database = try await PostgresFixture.make()
        try await Self.run(database) {
            let users = Array(1...50)
            try await database.insertUsers(users)
            let messages = Messages()
            let arguments = WorkerProcess.serveArguments(
                store: database.storeURL, metrics: false, extra: ["--max-concurrent-batches", "4", "--max-batch", "37"])
            try await withWorker(arguments) { worker in
                let client = try TestClient(worker.endpoint)
                defer { client.close() }
                try await ConcurrentBatchesLoad.run(client, users: users, messages)
                let profiles = try await database.profiles()
                #expect(users.allSatisfy { profiles[$0]?.profileType == "r\(ConcurrentBatchesLoad.rounds)" }, "\(profiles)")
                #expect(worker.logs.first { $0.message == "listening" }?["concurrent_batches"] == "4")
            }
        }
    }

    /// Runs `body` and drops the database afterwards, whatever happened.
    static func run(_ database: PostgresFixture, _ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch {
            await database.drop()
            throw error
        }
        await database.drop()
    }
}
