import Foundation
import SignalBroker
import SignalWorker
import WorkerOperations
import Testing
import ZeroMQ

/// `signal-worker broker` with CURVE: on the backend only listed workers get requests, on the
/// frontend only listed clients get in, and a failed authentication handler stops the broker.
@Suite("broker with CURVE", .enabled(if: ZeroMQ.has(.curve), "libzmq was built without CURVE"))
struct BrokerCurveTests {
    /// `broker.key`/`.pub`; `workers/listed.*` (admitted on the backend), `unlisted.*`;
    /// `clients/django.*` (admitted on the frontend), `stranger.*`.
    struct Keys {
        let directory: URL
        var path: String { directory.path }

        static func make(_ label: String) async throws -> Keys {
            let directory = try SQLiteFixture.emptyDirectory(label)
            for folder in ["workers", "clients"] {
                try FileManager.default.createDirectory(
                    at: directory.appendingPathComponent(folder), withIntermediateDirectories: true)
            }
            for (name, folder) in [
                ("broker", ""), ("listed", "/workers"), ("unlisted", ""), ("django", "/clients"), ("stranger", ""),
            ] {
                let result = try await ChildProcess.runWorkerCommand(["keygen", "--name", name, "--directory", directory.path + folder])
                guard result.exit == CommandLineTests.success else { throw TestFailure("keygen \(name): \(result.output)") }
            }
            return Keys(directory: directory)
        }

        var backendCurve: [String] {
            ["--backend-curve-secret-key-file", path + "/broker.key", "--backend-curve-allowed-workers", path + "/workers"]
        }
        var frontendCurve: [String] {
            ["--frontend-curve-secret-key-file", path + "/broker.key", "--frontend-curve-allowed-clients", path + "/clients"]
        }
        /// `serve --connect` options for a worker with `keyFile` (relative to the directory).
        func worker(_ keyFile: String) -> [String] {
            ["--curve-secret-key-file", path + "/" + keyFile, "--curve-server-key-file", path + "/broker.pub"]
        }
        func pair(_ file: String) throws -> CurveKeyPair { try CurveKeyFiles.readKeyPair(secretKeyFile: path + "/" + file) }
        func brokerPublicKey() throws -> CurveKey { try CurveKeyFiles.readPublicKey(path + "/broker.pub") }
    }

    @Test("backend CURVE on 0.0.0.0 needs no opt-out; a listed worker gets every request, an unlisted and a plaintext worker none")
    func onlyListedWorkersGetRequests() async throws {
        let keys = try await Keys.make("broker-curve")
        defer { try? FileManager.default.removeItem(at: keys.directory) }
        let database = try await SQLiteFixture.make("broker-curve-db")
        defer { database.remove() }
        let messages = Messages()
        let arguments = [
            "broker", "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://0.0.0.0:*", "--heartbeat-interval", "250ms",
            "--log-format", "json",
        ] + keys.backendCurve

        try await withBroker(arguments) { broker in
            #expect(broker.logs.contains { $0.message == "broker listening" && $0["backend_curve"]?.hasPrefix("on") == true })
            #expect(!broker.logs.contains { $0.message.contains("reachable from the network") })
            let backend = broker.backend.replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1")
            func start(_ extra: [String]) async throws -> WorkerProcess {
                try await WorkerProcess.start(
                    BrokerProcess.workerArguments(store: database.storeURL, backend: backend, heartbeat: "250ms", extra: extra))
            }
            let listed = try await start(keys.worker("workers/listed.key"))
            defer { listed.child.killNow() }
            try await broker.waitForLiveWorkers(1)

            let plaintext = try await start([])
            defer { plaintext.child.killNow() }
            let unlisted = try await start(keys.worker("unlisted.key"))
            defer { unlisted.child.killNow() }
            try await waitUntil("the broker refuses the unlisted worker", logsOf: broker.child) {
                $0.contains {
                    $0.message.contains("refused a connection: unknown client public key") && $0["domain"] == "broker-backend"
                }
            }

            // Requests for 40 users (an unsupported sender: every worker logs the ids it rejects):
            // spread over the live workers by their key, they all land on the one listed worker.
            let client = try TestClient(broker.frontend)
            defer { client.close() }
            var ids: Set<String> = []
            for user in 1...40 {
                let request = messages.signal(user: user, created: true, sender: "auth.group")
                #expect(try await client.request(request).isError("unsupported"))
                ids.insert(request.id)
            }
            // The worker logs a rejection as it answers it; its stderr reaches us a moment after the reply.
            try await waitUntil("the listed worker logged all 40 requests", logsOf: listed.child, timeout: .seconds(10)) {
                ids.isSubset(of: Set($0.compactMap { $0["message_id"] }))
            }
            #expect(listed.loggedMessageIDs.isSuperset(of: ids))
            #expect(plaintext.loggedMessageIDs.isEmpty)
            #expect(unlisted.loggedMessageIDs.isEmpty)
            #expect(broker.liveWorkers == 1)
            #expect(broker.logs.filter { $0.message == "worker joined" }.count == 1)
            #expect(listed.logs.contains { $0.message == "connecting to the broker" && $0["curve"] == "on" })
            for worker in [listed, plaintext, unlisted] { await worker.child.terminate(within: .seconds(10)) }
        }
    }

    @Test("frontend CURVE: a listed client is served through the broker; an unknown key and a plaintext client get nothing")
    func onlyListedClientsGetIn() async throws {
        let keys = try await Keys.make("broker-curve-frontend")
        defer { try? FileManager.default.removeItem(at: keys.directory) }
        let database = try await SQLiteFixture.make("broker-curve-frontend-db")
        defer { database.remove() }
        try database.insertUsers([1, 2, 3])
        let messages = Messages()

        try await withBroker(BrokerProcess.arguments(heartbeat: "250ms", extra: keys.frontendCurve + keys.backendCurve)) { broker in
            let worker = try await WorkerProcess.start(
                BrokerProcess.workerArguments(
                    store: database.storeURL, backend: broker.backend, heartbeat: "250ms", extra: keys.worker("workers/listed.key")))
            defer { worker.child.killNow() }
            try await broker.waitForLiveWorkers(1)
            let server = try keys.brokerPublicKey()

            let trusted = try TestClient(broker.frontend, curve: (try keys.pair("clients/django.key"), server))
            defer { trusted.close() }
            #expect(try await trusted.request(messages.signal(user: 1, created: true)).isOK("created"))

            let stranger = try TestClient(broker.frontend, curve: (try keys.pair("stranger.key"), server))
            defer { stranger.close() }
            try stranger.send(messages.signal(user: 2, created: true).json)
            let plaintext = try TestClient(broker.frontend)
            defer { plaintext.close() }
            try plaintext.send(messages.signal(user: 3, created: true).json)
            #expect(try await stranger.receive(timeout: .milliseconds(700)) == nil, "an unknown key got a reply")
            #expect(try await plaintext.receive(timeout: .milliseconds(700)) == nil, "a plaintext client got a reply")

            #expect(try await trusted.request(messages.ping()).isOK("pong"))
            #expect(try database.profile(user: 1) != nil)
            #expect(try database.profile(user: 2) == nil)
            #expect(try database.profile(user: 3) == nil)
            await worker.child.terminate(within: .seconds(10))
        }
    }

    @Test("the broker's authentication handler fails: the broker exits 1 naming the cause; the unlisted worker never joins")
    func handlerFailureStopsTheBroker() async throws {
        let keys = try await Keys.make("broker-curve-fault")
        defer { try? FileManager.default.removeItem(at: keys.directory) }
        let database = try await SQLiteFixture.make("broker-curve-fault-db")
        defer { database.remove() }
        let broker = try await BrokerProcess.start(
            BrokerProcess.arguments(heartbeat: "250ms", extra: keys.backendCurve),
            environment: ["SIGNAL_WORKER_TEST_ONLY_ZAP_FAULT_AT_REQUEST": "2"])
        defer { broker.child.killNow() }
        func start(_ extra: [String]) async throws -> WorkerProcess {
            try await WorkerProcess.start(
                BrokerProcess.workerArguments(store: database.storeURL, backend: broker.backend, heartbeat: "250ms", extra: extra))
        }
        let listed = try await start(keys.worker("workers/listed.key"))  // request 1: admitted
        defer { listed.child.killNow() }
        try await broker.waitForLiveWorkers(1)
        let unlisted = try await start(keys.worker("unlisted.key"))  // request 2: the handler fails
        defer { unlisted.child.killNow() }

        let exit = await broker.child.waitForExit(timeout: .seconds(30))
        #expect(exit == ChildProcess.Exit(status: 1, signalled: false), "\(broker.child.stderrTail())")
        let logs = broker.logs
        #expect(logs.contains { $0.level == "error" && $0.message.contains("CURVE authentication handler stopped") })
        #expect(
            logs.contains {
                $0.level == "critical" && $0.message.contains("stopped the broker: the CURVE authentication handler failed")
            }, "\(broker.child.stderrTail())")
        #expect(logs.filter { $0.message == "worker joined" }.count == 1)
        #expect(unlisted.loggedMessageIDs.isEmpty)
    }
}
