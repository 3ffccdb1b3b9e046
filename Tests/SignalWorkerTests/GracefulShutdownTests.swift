import Foundation
import Testing
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGTERM while a client pipelines thousands of requests: the worker stops reading, answers what it
/// read, exits 0 — and no request is ever half-applied.
@Suite("graceful shutdown under load")
struct GracefulShutdownTests {
    static let requestCount = 5_000
    static let signalAfterReplies = 500
    /// Requests in flight at most (sent, not answered).
    static let window = 1_000

    @Test("SIGTERM under load on SQLite: exit 0 within 10 s, every ack durable, nothing half-applied")
    func sqlite() async throws {
        let database = try await SQLiteFixture.make("e2e-shutdown")
        defer { database.remove() }
        let users = Array(1...Self.requestCount)
        try database.insertUsers(users)
        let run = try await Self.pipelineAndTerminate(store: database.storeURL, users: users)
        try Self.verify(run, applied: try database.appliedIDs(), profiles: try database.profiles())
    }

    @Test(
        "SIGTERM under load on PostgreSQL: exit 0 within 10 s, every ack durable, nothing half-applied",
        .enabled(if: TestEnvironment.postgresAvailable("graceful shutdown on PostgreSQL")))
    func postgres() async throws {
        let database = try await PostgresFixture.make()
        try await EndToEndPostgresTests.run(database) {
            let users = Array(1...Self.requestCount)
            try await database.insertUsers(users)
            let run = try await Self.pipelineAndTerminate(store: database.storeURL, users: users)
            try Self.verify(run, applied: try await database.appliedIDs(), profiles: try await database.profiles())
        }
    }

    /// What the client saw.
    struct Run: Sendable {
        /// Every request: id and user.
        var requests: [(id: String, user: Int)]
        /// How many of them were sent.
        var sent: Int
        /// Replies by id.
        var replies: [String: ParsedReply]
        /// How the worker ended, and how long after SIGTERM.
        var exit: ChildProcess.Exit?
        var exitDelay: Duration?
        /// The worker's log.
        var logs: [LogLine]
        var stderrTail: String
    }

    /// Starts a worker, pipelines one create per user from one DEALER, sends SIGTERM after
    /// `signalAfterReplies` replies, and reads replies until the worker has exited.
    static func pipelineAndTerminate(store: String, users: [Int]) async throws -> Run {
        let worker = try await WorkerProcess.start(WorkerProcess.serveArguments(store: store, metrics: false))
        defer { worker.child.killNow() }
        let messages = Messages()
        let requests = users.map { messages.signal(user: $0, created: true, data: ["profile_type": "business"]) }
        let child = worker.child
        let endpoint = worker.endpoint

        let (replies, exitDelay, sent) = try await onThread("shutdown-client") {
            () throws -> ([String: ParsedReply], Duration?, Int) in
            let client = try TestClient(endpoint)
            defer { client.close() }
            var replies: [String: ParsedReply] = [:]
            var sent = 0
            var signalledAt: ContinuousClock.Instant?
            var exitedAt: ContinuousClock.Instant?
            var lastReplyAt = ContinuousClock.now
            while true {
                // Keep a window of requests in flight; after SIGTERM send all the rest at once: the
                // worker must not hang on a flood while it stops, and what it never read stays
                // unanswered, and must then be not applied at all.
                while sent < requests.count, signalledAt != nil || sent - replies.count < window {
                    do {
                        try client.socket.send(Array(requests[sent].json.utf8), flags: .dontWait)
                        sent += 1
                    } catch let error as ZeroMQError where error.code == .wouldBlock {
                        break
                    }
                }
                // Wait a little only when there is nothing to send; then take what is there.
                var timeout: Duration = sent < requests.count && sent - replies.count < window ? .zero : .milliseconds(20)
                while let reply = try client.blockingReceive(timeout: timeout) {
                    if let id = reply.id { replies[id] = reply }
                    lastReplyAt = .now
                    timeout = .zero
                }
                if signalledAt == nil, replies.count >= signalAfterReplies {
                    kill(child.pid, SIGTERM)
                    signalledAt = .now
                }
                if let signalledAt {
                    if exitedAt == nil, !child.isRunning { exitedAt = .now }
                    // Done once the worker is gone and nothing arrived for a while (replies it flushed
                    // while closing are in our socket by then). 2 s, not less: on a loaded CI machine this
                    // reading thread can be off the CPU for half a second with replies still unread.
                    if exitedAt != nil, lastReplyAt.duration(to: .now) > .seconds(2) { break }
                    if signalledAt.duration(to: .now) > .seconds(20) { break }
                } else if lastReplyAt.duration(to: .now) > .seconds(20) {
                    throw TestFailure("no reply for 20 s before SIGTERM (\(replies.count) replies, \(sent) sent)")
                }
            }
            return (replies, zip(signalledAt, exitedAt).map { $0.duration(to: $1) }, sent)
        }
        let exit = await child.waitForExit(timeout: .seconds(5))
        return Run(
            requests: requests.enumerated().map { ($0.element.id, users[$0.offset]) }, sent: sent, replies: replies, exit: exit,
            exitDelay: exitDelay, logs: worker.logs, stderrTail: child.stderrTail())
    }

    /// The checks shared by both stores.
    static func verify(_ run: Run, applied: Set<String>, profiles: [Int: ProfileRow]) throws {
        let tail = run.stderrTail
        #expect(run.exit == ChildProcess.Exit(status: 0, signalled: false), "worker ended \(run.exit.map(\.description) ?? "never"); stderr:\n\(tail)")
        let delay = try #require(run.exitDelay, "the worker did not exit within 20 s of SIGTERM; stderr:\n\(tail)")
        #expect(delay <= .seconds(10), "exit took \(delay) after SIGTERM")
        #expect(run.logs.contains { $0.message.hasPrefix("stopped") }, "no \"stopped\" log line; stderr:\n\(tail)")

        #expect(run.replies.count >= signalAfterReplies)
        let notOK = run.replies.values.filter { !$0.isOK("created") }
        #expect(notOK.isEmpty, "every reply should be ok/created: \(notOK.prefix(3))")

        var halfApplied: [String] = []
        var ackedMissing: [String] = []
        var appliedUnacked = 0
        for (id, user) in run.requests {
            let recorded = applied.contains(id)
            let written = profiles[user] != nil
            if run.replies[id] != nil {
                if !(recorded && written) { ackedMissing.append("\(id) (user \(user), recorded \(recorded), row \(written))") }
            } else if recorded != written {
                halfApplied.append("\(id) (user \(user), recorded \(recorded), row \(written))")
            } else if recorded {
                appliedUnacked += 1
            }
        }
        #expect(ackedMissing.isEmpty, "acknowledged but not durable: \(ackedMissing.prefix(5))")
        #expect(halfApplied.isEmpty, "half-applied: \(halfApplied.prefix(5))")
        // The worker promises to answer every request it read before it closes the socket.
        #expect(appliedUnacked == 0, "\(appliedUnacked) requests were applied but their replies never arrived")
        print(
            "graceful shutdown: \(run.requests.count) requests, \(run.sent) sent, \(run.replies.count) acknowledged, \(applied.count) applied, "
                + "exit \(run.exitDelay.map { "\($0)" } ?? "-") after SIGTERM")
    }
}

/// `(a, b)` when both are present.
private func zip<A, B>(_ a: A?, _ b: B?) -> (A, B)? {
    guard let a, let b else { return nil }
    return (a, b)
}
