import Foundation
import SignalProtocol
import Testing

@testable import SignalBroker
@testable import SignalWorker
@testable import WorkerOperations

/// What the worker logs about requests that succeed: one debug line each, and a periodic summary.
@Suite("signal-worker serve: logs of applied requests")
struct ActivityLogTests {
    @Test("at debug each applied request is logged with id, object, action and latency; an activity line sums them up")
    func debugLinesAndSummary() async throws {
        let database = try await SQLiteFixture.make("activity-log")
        defer { database.remove() }
        try database.insertUsers([1])
        let messages = Messages()
        let arguments = WorkerProcess.serveArguments(
            store: database.storeURL, metrics: false, extra: ["--log-level", "debug", "--activity-log-seconds", "1"])
        try await withWorker(arguments) { worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            let create = messages.signal(user: 1, created: true, seq: 3)
            #expect(try await client.request(create).isOK("created"))
            let skip = messages.signal(user: 2, created: false)
            #expect(try await client.request(skip).isOK("skipped"))

            // Each line is written before its reply is sent, but reaches our stderr reader a moment later.
            try await waitUntil("both requests logged as applied", logsOf: worker.child, timeout: .seconds(10)) { logs in
                Set(logs.filter { $0.message == "applied" }.compactMap { $0["message_id"] }).isSuperset(of: [create.id, skip.id])
            }
            let applied = worker.logs.filter { $0.message == "applied" }
            let created = applied.first { $0["message_id"] == create.id }
            #expect(created?.level == "debug", "\(applied)")
            #expect(created?["action"] == "created" && created?["sender"] == "auth.user" && created?["pk"] == "1")
            #expect(created?["seq"] == "3")
            #expect(created?["latency"]?.hasSuffix(" ms") == true, "\(String(describing: created))")
            #expect(applied.contains { $0["message_id"] == skip.id && $0["action"] == "skipped" })

            // A summary comes with the first batch at least a second after the previous one (a slow
            // machine only makes the wait longer): resend (a duplicate) until the two requests above
            // are counted, then the lines add up to exactly what was answered.
            func total(_ key: String) -> Int {
                worker.logs.filter { $0.message == "activity" }.reduce(0) { $0 + (Int($1[key] ?? "") ?? 0) }
            }
            let deadline = ContinuousClock.now + .seconds(30)
            while total("created") + total("skipped") < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                #expect(try await client.request(create).isOK("duplicate"))
            }
            let summaries = worker.logs.filter { $0.message == "activity" }
            #expect(summaries.allSatisfy { $0.level == "info" && $0["queued"] != nil }, "\(summaries)")
            #expect(total("created") == 1 && total("skipped") == 1 && total("errors") == 0, "\(summaries)")
        }
    }

    @Test("the summary counts actions, errors and held requests, at most once per interval")
    func summaryCounts() {
        let start = ContinuousClock.now
        var summary = ActivitySummary(interval: .seconds(10), now: start)
        summary.add(.ok(.updated), held: false)
        summary.add(.stale(lastSequence: 4), held: false)
        summary.add(.error(ReplyError(.storeUnavailable, "held")), held: true)
        #expect(summary.take(now: start + .seconds(9)) == nil)
        let fields = summary.take(now: start + .seconds(10))
        #expect(fields?["updated"] == "1" && fields?["stale"] == "1" && fields?["created"] == "0")
        #expect(fields?["errors"] == "1" && fields?["errors_store_unavailable"] == "1" && fields?["held"] == "1")
        #expect(summary.take(now: start + .seconds(30)) == nil, "nothing happened since")
        #expect(Duration.milliseconds(1.98).millisecondsText == "1.98 ms")
        #expect(Duration.microseconds(711).millisecondsText == "0.71 ms")
    }
}
