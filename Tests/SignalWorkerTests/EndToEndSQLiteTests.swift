import Foundation
import Testing
import ZeroMQ

/// The built `signal-worker serve` on a copy of Django's SQLite database, driven over real sockets.
@Suite("signal-worker serve on SQLite, end to end")
struct EndToEndSQLiteTests {
    @Test("create, update, skip and duplicate change the profile rows as the Django receiver would")
    func createUpdateSkipDuplicate() async throws {
        let database = try await SQLiteFixture.make("e2e-core")
        defer { database.remove() }
        try database.insertUsers([1, 2])
        let messages = Messages()

        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }

            let create = messages.signal(user: 1, created: true, data: ["profile_type": "business", "sex": "F", "birthdate": "1990-01-02"])
            let created = try await client.request(create)
            #expect(created.isOK("created"), "\(created)")
            #expect(created.id == create.id)
            #expect(created.version == 1)
            #expect(try database.profile(user: 1) == ProfileRow(profileType: "business", sex: "F", birthdate: "1990-01-02"))

            // A key present with null writes NULL; an absent key keeps the stored value.
            let update = messages.signal(user: 1, created: false, data: ["sex": nil, "birthdate": "2001-2-3"])
            let updated = try await client.request(update)
            #expect(updated.isOK("updated"), "\(updated)")
            #expect(try database.profile(user: 1) == ProfileRow(profileType: "business", sex: nil, birthdate: "2001-02-03"))

            let skip = messages.signal(user: 2, created: false, data: ["profile_type": "business"])
            let skipped = try await client.request(skip)
            #expect(skipped.isOK("skipped"), "\(skipped)")
            #expect(try database.profile(user: 2) == nil)

            // The first message again (same id): nothing changes, even though its data differs from the row.
            let duplicate = try await client.request(create)
            #expect(duplicate.isOK("duplicate"), "\(duplicate)")
            #expect(try database.profile(user: 1) == ProfileRow(profileType: "business", sex: nil, birthdate: "2001-02-03"))

            // Another create for user 1 (a new id): Django would raise IntegrityError.
            let again = try await client.request(messages.signal(user: 1, created: true))
            #expect(again.isError("conflict"), "\(again)")

            let applied = try database.appliedIDs()
            #expect(applied == [create.id, update.id, skip.id])
        }
    }

    @Test("one batch with a duplicate and a failing message: the others apply, each reply says what happened")
    func batchWithDuplicateAndFailure() async throws {
        let database = try await SQLiteFixture.make("e2e-batch")
        defer { database.remove() }
        try database.insertUsers([1, 2, 3])
        let messages = Messages()

        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            let results = try await Self.pipeline(client, EndToEndBatch.messages(messages))
            EndToEndBatch.check(results)
            #expect(try database.profiles() == EndToEndBatch.expectedProfiles)
            #expect(try database.appliedIDs() == EndToEndBatch.expectedApplied)
        }
    }

    @Test("by default two batches are in flight on SQLite too, and one user's messages still apply in order")
    func concurrentBatchesKeepPerUserOrder() async throws {
        let database = try await SQLiteFixture.make("e2e-concurrent")
        defer { database.remove() }
        let users = Array(1...50)
        try database.insertUsers(users)
        // No --max-concurrent-batches: the store's default runs. The rule itself (no two batches in flight
        // share a user) is store-independent code; the PostgreSQL twin of this test, with 4 in flight, fails
        // in every run without it. Here the writer's FIFO queue makes a reorder rare even without the rule.
        let arguments = WorkerProcess.serveArguments(store: database.storeURL, metrics: false, extra: ["--max-batch", "37"])
        try await withWorker(arguments) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            #expect(worker.logs.first { $0.message == "listening" }?["concurrent_batches"] == "2")
            try await ConcurrentBatchesLoad.run(client, users: users, Messages())
            let profiles = try database.profiles()
            #expect(users.allSatisfy { profiles[$0]?.profileType == "r\(ConcurrentBatchesLoad.rounds)" }, "\(profiles)")
        }
    }

    @Test("ping, malformed JSON, unknown sender and an invalid date get the documented replies; no row is written")
    func errorReplies() async throws {
        let database = try await SQLiteFixture.make("e2e-errors")
        defer { database.remove() }
        try database.insertUsers([1])
        let messages = Messages()

        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }

            let ping = messages.ping()
            let pong = try await client.request(ping)
            #expect(pong.isOK("pong"), "\(pong)")
            #expect(pong.id == ping.id)

            // Two frames after the routing id: not a request.
            try client.socket.send(multipart: [Array(ping.json.utf8), Array(ping.json.utf8)])
            let twoFrames = try #require(try await client.receive(timeout: .seconds(10)), "no reply to a two-frame message")
            #expect(twoFrames.isError("bad_request"), "\(twoFrames)")

            try client.send(#"{"v": 1, "id": "abc", "created": tru"#)
            let malformed = try #require(try await client.receive(timeout: .seconds(10)), "no reply to malformed JSON")
            #expect(malformed.isError("bad_request"), "\(malformed)")
            #expect(malformed.idIsNull, "id must be null when the request could not be read: \(malformed)")
            #expect(malformed.retryable == false)

            let unknown = try await client.request(messages.signal(user: 1, created: true, sender: "auth.group"))
            #expect(unknown.isError("unsupported"), "\(unknown)")

            let badDate = messages.signal(user: 1, created: true, data: ["birthdate": "02/01/1990"])
            let invalid = try await client.request(badDate)
            #expect(invalid.isError("invalid_value"), "\(invalid)")
            #expect(invalid.field == "birthdate")
            #expect(invalid.id == badDate.id)

            #expect(try database.profiles().isEmpty)
            #expect(try database.appliedIDs().isEmpty, "a failed message must not be recorded as applied")

            // The same user can still be created afterwards: nothing half-written blocks it.
            let create = try await client.request(messages.signal(user: 1, created: true, data: ["birthdate": "1990-01-02"]))
            #expect(create.isOK("created"), "\(create)")
            #expect(try database.profile(user: 1) == ProfileRow(profileType: "personal", sex: nil, birthdate: "1990-01-02"))
        }
    }

    @Test("a frame over --max-request-bytes gets bad_request and the worker keeps serving")
    func oversizedRequest() async throws {
        let database = try await SQLiteFixture.make("e2e-request-limit")
        defer { database.remove() }
        try database.insertUsers([1])
        let messages = Messages()

        try await withWorker(
            WorkerProcess.serveArguments(store: database.storeURL, extra: ["--max-request-bytes", "1024"])
        ) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }

            let big = messages.signal(user: 1, created: true, padding: 2_000)
            #expect(big.json.utf8.count > 1_024)
            let rejected = try await client.request(big)
            #expect(rejected.isError("bad_request"), "\(rejected)")
            #expect(try database.profiles().isEmpty)

            let fits = try await client.request(messages.signal(user: 1, created: true, padding: 100))
            #expect(fits.isOK("created"), "\(fits)")
            #expect(try database.profile(user: 1) != nil)
        }
    }

    @Test("with the default limits, a frame one byte over --max-request-bytes gets bad_request; one over the transport cap gets nothing")
    func defaultLimitsLeaveHeadroomForBadRequest() async throws {
        let database = try await SQLiteFixture.make("e2e-default-limits")
        defer { database.remove() }
        try database.insertUsers([1])
        let messages = Messages()
        // A request of exactly `size` bytes: the padding field makes up the difference.
        func request(size: Int) -> (id: String, json: String) {
            let id = messages.nextID()
            let base = messages.signal(id: id, user: 1, created: true, padding: 1).json.utf8.count
            return messages.signal(id: id, user: 1, created: true, padding: 1 + size - base)
        }

        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }

            // Defaults: --max-request-bytes 65536, --max-message-bytes 65536 + 65536.
            let justOver = request(size: 65_536 + 1)
            #expect(justOver.json.utf8.count == 65_537)
            let rejected = try await client.request(justOver)
            #expect(rejected.isError("bad_request"), "\(rejected)")
            #expect(rejected.raw.contains("exceeds the limit of 65536 bytes"), "\(rejected)")
            let atCap = request(size: 131_072)
            #expect(try await client.request(atCap).isError("bad_request"), "a frame at the transport cap still reaches the decoder")
            #expect(try database.profiles().isEmpty)

            let overCap = try TestClient(worker.endpoint)
            defer { overCap.close() }
            #expect(try await overCap.request(messages.ping()).isOK("pong"))
            try overCap.send(request(size: 131_072 + 1).json)
            #expect(try await overCap.receive(timeout: .seconds(1)) == nil, "libzmq drops a peer over ZMQ_MAXMSGSIZE")

            let fits = try await client.request(messages.signal(user: 1, created: true))
            #expect(fits.isOK("created"), "\(fits)")
        }
    }

    @Test("a frame over --max-message-bytes disconnects only that client; another one is still answered")
    func oversizedTransportFrame() async throws {
        let database = try await SQLiteFixture.make("e2e-transport-limit")
        defer { database.remove() }
        try database.insertUsers([1, 2])
        let messages = Messages()

        try await withWorker(
            WorkerProcess.serveArguments(
                store: database.storeURL, extra: ["--max-request-bytes", "1024", "--max-message-bytes", "4096"])
        ) { worker in
            let offender = try TestClient(worker.endpoint)
            defer { offender.close() }
            let other = try TestClient(worker.endpoint)
            defer { other.close() }
            // Both connected and served once before the oversized frame.
            #expect(try await offender.request(messages.ping()).isOK("pong"))
            #expect(try await other.request(messages.ping()).isOK("pong"))

            let huge = messages.signal(user: 1, created: true, padding: 10_000)
            try offender.send(huge.json)
            let reply = try await offender.receive(timeout: .seconds(1))
            #expect(reply == nil, "libzmq should drop the connection of a peer over ZMQ_MAXMSGSIZE; got \(reply.map(\.raw) ?? "")")
            #expect(try database.profile(user: 1) == nil)

            let answered = try await other.request(messages.signal(user: 2, created: true))
            #expect(answered.isOK("created"), "\(answered)")
            #expect(try database.profile(user: 2) != nil)
            #expect(worker.child.isRunning)
        }
    }

    @Test("a REQ client, whose requests carry an empty delimiter frame, gets its reply")
    func requestReplyClient() async throws {
        let database = try await SQLiteFixture.make("e2e-req")
        defer { database.remove() }
        try database.insertUsers([7])
        let messages = Messages()

        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
            let client = try TestClient(worker.endpoint, type: .req)
            defer { client.close() }
            let create = messages.signal(user: 7, created: true, data: ["sex": "M"])
            let reply = try await client.request(create)
            #expect(reply.isOK("created"), "\(reply)")
            #expect(reply.id == create.id)
            // REQ alternates strictly: a second round trip proves the first reply closed the first.
            let ping = try await client.request(messages.ping())
            #expect(ping.isOK("pong"), "\(ping)")
            #expect(try database.profile(user: 7) == ProfileRow(profileType: "personal", sex: "M", birthdate: nil))
        }
    }

    @Test("pipelined requests from one DEALER are all answered, each by id")
    func pipelinedRequests() async throws {
        let database = try await SQLiteFixture.make("e2e-pipeline")
        defer { database.remove() }
        let users = Array(1...300)
        try database.insertUsers(users)
        let messages = Messages()

        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL)) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            let creates = users.map { messages.signal(user: $0, created: true, data: ["profile_type": "p\($0 % 7)"]) }
            for message in creates { try client.send(message.json) }
            var replies: [String: ParsedReply] = [:]
            while replies.count < creates.count, let reply = try await client.receive(timeout: .seconds(10)) {
                if let id = reply.id { replies[id] = reply }
            }
            #expect(replies.count == creates.count)
            #expect(creates.allSatisfy { replies[$0.id]?.isOK("created") == true })
            let profiles = try database.profiles()
            #expect(profiles.count == users.count)
            #expect(users.allSatisfy { profiles[$0]?.profileType == "p\($0 % 7)" })
        }
    }

    /// Sends every message at once (so they meet in one batch) and collects the replies by id.
    static func pipeline(_ client: TestClient, _ batch: [(id: String, json: String)]) async throws -> [String: [ParsedReply]] {
        for message in batch { try client.send(message.json) }
        var replies: [String: [ParsedReply]] = [:]
        var count = 0
        while count < batch.count, let reply = try await client.receive(timeout: .seconds(10)) {
            replies[reply.id ?? "", default: []].append(reply)
            count += 1
        }
        #expect(count == batch.count, "\(count) replies to \(batch.count) requests")
        return replies
    }
}

/// A batch mixing outcomes: creates, the same id twice, a user that does not exist, a bad date, an update
/// of a profile created earlier in the same batch. Shared by the SQLite and PostgreSQL tests.
enum EndToEndBatch {
    static let createOne = "batch-create-1"
    static let missingUser = "batch-missing-user"
    static let badDate = "batch-bad-date"
    static let createTwo = "batch-create-2"
    static let updateOne = "batch-update-1"

    static func messages(_ messages: Messages) -> [(id: String, json: String)] {
        [
            messages.signal(id: createOne, user: 1, created: true, data: ["sex": "F"]),
            messages.signal(id: createOne, user: 1, created: true, data: ["sex": "F"]),
            messages.signal(id: missingUser, user: 999, created: true),
            messages.signal(id: badDate, user: 3, created: true, data: ["birthdate": "2021-02-29"]),
            messages.signal(id: createTwo, user: 2, created: true, data: ["profile_type": "business"]),
            messages.signal(id: updateOne, user: 1, created: false, data: ["birthdate": "1990-01-02"]),
        ]
    }

    static func check(_ replies: [String: [ParsedReply]]) {
        let first = replies[createOne] ?? []
        #expect(first.count == 2)
        #expect(first.map { $0.action ?? "" }.sorted() == ["created", "duplicate"], "\(first)")
        #expect(replies[missingUser]?.first?.isError("conflict") == true, "\(replies[missingUser] ?? [])")
        #expect(replies[badDate]?.first?.isError("invalid_value") == true, "\(replies[badDate] ?? [])")
        #expect(replies[badDate]?.first?.field == "birthdate")
        #expect(replies[createTwo]?.first?.isOK("created") == true, "\(replies[createTwo] ?? [])")
        #expect(replies[updateOne]?.first?.isOK("updated") == true, "\(replies[updateOne] ?? [])")
    }

    static let expectedProfiles: [Int: ProfileRow] = [
        1: ProfileRow(profileType: "personal", sex: "F", birthdate: "1990-01-02"),
        2: ProfileRow(profileType: "business", sex: nil, birthdate: nil),
    ]

    /// Only the messages that changed something are recorded as applied.
    static let expectedApplied: Set<String> = [createOne, createTwo, updateOne]
}

/// Batches in flight at once must not reorder one user's messages. Shared by the SQLite and
/// PostgreSQL tests: `users` each get a `created` message (seq = user), then 40 rounds of updates over
/// all of them are sent before any reply is read (small batches with `--max-batch 37`, several in
/// flight, most sharing users with the one before). Every update must be `updated` (an overtaken
/// older message would be `stale`); the caller checks the rows (all `r40`).
enum ConcurrentBatchesLoad {
    static let rounds = 40

    static func run(_ client: TestClient, users: [Int], _ messages: Messages) async throws {
        for user in users {
            #expect(try await client.request(messages.signal(user: user, created: true, seq: user)).isOK("created"))
        }
        var sent: [String] = []
        for round in 1...rounds {
            for user in users {
                let message = messages.signal(
                    user: user, created: false, data: ["profile_type": "r\(round)"], seq: 1_000 * round + user)
                try client.send(message.json)
                sent.append(message.id)
            }
        }
        var actions: [String: Int] = [:]
        for _ in sent {
            guard let reply = try await client.receive(timeout: .seconds(20)) else { throw TestFailure("a reply is missing") }
            actions[reply.isOK("updated") ? "updated" : reply.raw, default: 0] += 1
        }
        #expect(actions == ["updated": sent.count], "an older message overtook a newer one: \(actions)")
    }
}
