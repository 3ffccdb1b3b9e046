import Foundation
import GRDB
import Testing

/// A message answered `store_unavailable` is not overtaken by a later message of its user
/// (docs/PROTOCOL.md, "Exactly once and ordering"): the real worker on a copy of Django's SQLite
/// database whose write lock a second connection holds past the worker's busy timeout.
@Suite("signal-worker serve: a retryable failure holds back the later messages of its object")
struct RetryOrderTests {
    /// Holds SQLite's write lock from a second connection (as Django would) until `release` is
    /// signalled (60 s at most); returns once the lock is held. The task ends after the COMMIT.
    static func holdWriteLock(on database: DatabaseQueue, release: DispatchSemaphore) async throws -> Task<Void, any Error> {
        let (locked, continuation) = AsyncStream<Void>.makeStream()
        let holder = Task {
            defer { continuation.finish() }
            try await database.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                continuation.yield()
                _ = release.wait(timeout: .now() + 60)
                try db.execute(sql: "COMMIT")
            }
        }
        for await _ in locked { break }
        return holder
    }

    /// A worker (writes give up after 300 ms of waiting for the lock; `extra` arguments added) on a
    /// copy of Django's database where user 1 has a profile (created with seq 1), and a client.
    static func withProfiledUser(
        _ label: String, _ extra: [String] = [],
        body: (_ database: SQLiteFixture, _ client: TestClient, _ worker: WorkerProcess) async throws -> Void
    ) async throws {
        let database = try await SQLiteFixture.make(label)
        defer { database.remove() }
        try database.insertUsers([1])
        let arguments = WorkerProcess.serveArguments(
            store: database.storeURL, metrics: false, extra: ["--sqlite-busy-timeout-ms", "300"] + extra)
        try await withWorker(arguments) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            #expect(try await client.request(Messages().signal(user: 1, created: true, seq: 1)).isOK("created"))
            try await body(database, client, worker)
        }
    }

    /// Sends `message` while a second connection holds the write lock, and returns its reply (which
    /// must come within 30 s); the lock is released once the reply is in.
    static func requestUnderLock(
        _ message: (id: String, json: String), _ client: TestClient, _ database: SQLiteFixture
    ) async throws -> ParsedReply {
        let release = DispatchSemaphore(value: 0)
        let holder = try await holdWriteLock(on: try database.open(), release: release)
        let reply: Result<ParsedReply, any Error>
        do { reply = .success(try await client.request(message, timeout: .seconds(30))) } catch { reply = .failure(error) }
        release.signal()
        try await holder.value
        return try reply.get()
    }

    /// The next reply, which must come within 30 s.
    static func nextReply(_ client: TestClient) async throws -> ParsedReply {
        guard let reply = try await client.receive(timeout: .seconds(30)) else { throw TestFailure("no reply within 30 s") }
        return reply
    }

    @Test("pipelined: seq 5 fails on the lock, seq 6 is held instead of applied; resent in order, both apply")
    func pipelinedLaterMessageIsHeld() async throws {
        let messages = Messages()
        // One message per batch, as when they arrive apart: seq 6 is applied on its own after seq 5 failed.
        try await Self.withProfiledUser("hold-pipelined", ["--max-batch", "1"]) { database, client, worker in
            let release = DispatchSemaphore(value: 0)
            let holder = try await Self.holdWriteLock(on: try database.open(), release: release)
            let five = messages.signal(user: 1, created: false, data: ["sex": "F"], seq: 5)
            let six = messages.signal(user: 1, created: false, data: ["birthdate": "1990-01-02"], seq: 6)
            try client.send(five.json)
            try client.send(six.json)
            let first = try await Self.nextReply(client)
            release.signal()
            try await holder.value
            let second = try await Self.nextReply(client)

            #expect(first.id == five.id && first.isError("store_unavailable"), "\(first)")
            #expect(first.retryable == true)
            // The lock is free now, yet seq 6 must not be applied before seq 5.
            #expect(second.id == six.id && second.isError("store_unavailable"), "\(second)")
            #expect(second.errorMessage?.contains("held") == true, "\(second)")
            #expect(try database.profile(user: 1) == ProfileRow(profileType: "personal", sex: nil, birthdate: nil))

            // The client resends as the protocol says, oldest first.
            #expect(try await client.request(five).isOK("updated"))
            #expect(try await client.request(six).isOK("updated"))
            #expect(try database.profile(user: 1) == ProfileRow(profileType: "personal", sex: "F", birthdate: "1990-01-02"))
            #expect(worker.logs.contains { $0.message == "request held" && $0["message_id"] == six.id })
        }
    }

    @Test("seq 6 sent after seq 5's error reply, with the lock already free: held until seq 5 is applied")
    func laterMessageAfterTheErrorIsHeld() async throws {
        let messages = Messages()
        try await Self.withProfiledUser("hold-after") { database, client, _ in
            let five = messages.signal(user: 1, created: false, data: ["sex": "F"], seq: 5)
            let failed = try await Self.requestUnderLock(five, client, database)
            #expect(failed.isError("store_unavailable"), "\(failed)")

            let six = messages.signal(user: 1, created: false, data: ["birthdate": "1990-01-02"], seq: 6)
            let held = try await client.request(six)
            #expect(held.isError("store_unavailable") && held.retryable == true, "\(held)")
            #expect(held.errorMessage?.contains("seq 5") == true, "\(held)")
            // Another user is not held back.
            try database.insertUsers([2])
            #expect(try await client.request(messages.signal(user: 2, created: true, seq: 7)).isOK("created"))

            #expect(try await client.request(five).isOK("updated"))
            #expect(try await client.request(six).isOK("updated"))
            #expect(try database.profile(user: 1) == ProfileRow(profileType: "personal", sex: "F", birthdate: "1990-01-02"))
        }
    }

    @Test("after the hold time the later message applies, and the resent one is stale with the seq that overtook it")
    func holdEndsAndStaleNamesTheNewerSequence() async throws {
        let messages = Messages()
        try await Self.withProfiledUser("hold-expiry", ["--retry-hold-ms", "300"]) { database, client, _ in
            let five = messages.signal(user: 1, created: false, data: ["sex": "F"], seq: 5)
            let failed = try await Self.requestUnderLock(five, client, database)
            #expect(failed.isError("store_unavailable"), "\(failed)")

            // Resent until the hold has ended (300 ms after the failure; a slow machine only waits longer).
            let six = messages.signal(user: 1, created: false, data: ["birthdate": "1990-01-02"], seq: 6)
            let deadline = ContinuousClock.now + .seconds(30)
            var reply = try await client.request(six)
            while reply.isError("store_unavailable"), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                reply = try await client.request(six)
            }
            #expect(reply.isOK("updated"), "\(reply)")
            let stale = try await client.request(five)
            #expect(stale.isOK("stale"), "\(stale)")
            #expect(stale.lastSequence == 6, "\(stale)")
        }
    }
}
