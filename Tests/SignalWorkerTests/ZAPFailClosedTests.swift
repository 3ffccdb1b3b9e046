import Foundation
import SignalBroker
import SignalWorker
import WorkerOperations
import Testing
import ZeroMQ

/// libzmq 4.3 admits CURVE clients unchecked when no ZAP handler is bound (no
/// `ZMQ_ZAP_ENFORCE_DOMAIN` outside draft builds): when the worker's handler stops, the worker
/// must stop serving rather than let anyone in.
@Suite("CURVE authentication handler fails closed", .enabled(if: ZeroMQ.has(.curve), "libzmq was built without CURVE"))
struct ZAPFailClosedTests {
    @Test("the authentication handler fails while the socket is bound: the worker exits 1, names the cause, and admits no unknown key")
    func handlerFailureStopsTheWorker() async throws {
        let keys = try await CurveSecurityTests.Keys.make("zap-fault")
        defer { try? FileManager.default.removeItem(at: keys.directory) }
        let database = try await SQLiteFixture.make("zap-fault-db")
        defer { database.remove() }
        try database.insertUsers([1, 2])
        let messages = Messages()

        // Test-only fault: the handler fails on the second authentication request it receives.
        let worker = try await WorkerProcess.start(
            CurveSecurityTests().serveArguments(database, keys),
            environment: ["SIGNAL_WORKER_TEST_ONLY_ZAP_FAULT_AT_REQUEST": "2"])
        defer { worker.child.killNow() }
        let server = try keys.workerPublicKey()

        // Request 1: the allowed client gets in and is served.
        let trusted = try TestClient(worker.endpoint, curve: (try keys.pair("clients/django.key"), server))
        defer { trusted.close() }
        #expect(try await trusted.request(messages.ping()).isOK("pong"))

        // Request 2: an unknown key; the handler fails on it.
        let first = try TestClient(worker.endpoint, curve: (try keys.pair("stranger.key"), server))
        defer { first.close() }
        try first.send(messages.signal(user: 1, created: true).json)
        try await waitUntil("the handler's failure is logged", logsOf: worker.child) {
            $0.contains { $0.level == "error" && $0.message.contains("CURVE authentication handler stopped") }
        }

        // With no handler bound, libzmq would admit this new connection unchecked (ECONNREFUSED from
        // the ZAP endpoint means "no authentication"): it must get nothing.
        let second = try TestClient(worker.endpoint, curve: (try keys.pair("stranger.key"), server))
        defer { second.close() }
        try second.send(messages.signal(user: 2, created: true).json)

        let exit = await worker.child.waitForExit(timeout: .seconds(30))
        #expect(exit == ChildProcess.Exit(status: 1, signalled: false), "\(worker.child.stderrTail())")
        #expect(try await first.receive(timeout: .milliseconds(300)) == nil, "an unknown key got a reply")
        #expect(try await second.receive(timeout: .milliseconds(300)) == nil, "an unknown key got a reply")
        #expect(try database.profiles().isEmpty)

        let logs = worker.logs
        #expect(logs.contains { $0.level == "error" && $0.message.contains("injected test fault") }, "\(worker.child.stderrTail())")
        #expect(
            logs.contains {
                $0.level == "critical" && $0.message.contains("cannot serve")
                    && $0.message.contains("the CURVE authentication handler failed")
            }, "\(worker.child.stderrTail())")
        #expect(!logs.contains { $0.message.contains("every request read was answered") })
    }
}

/// Waits (up to `timeout`) until `condition` holds for the JSON log lines `child` wrote so far;
/// throws with its stderr otherwise.
func waitUntil(
    _ what: String, logsOf child: ChildProcess, timeout: Duration = .seconds(20), _ condition: ([LogLine]) -> Bool
) async throws {
    let deadline = ContinuousClock.now + timeout
    while !condition(LogLine.parse(child.lines(.standardError))) {
        if ContinuousClock.now >= deadline {
            throw TestFailure("not within \(timeout): \(what); stderr:\n\(child.stderrTail())")
        }
        try await Task.sleep(for: .milliseconds(10))
    }
}
