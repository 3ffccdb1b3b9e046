import Foundation
import SignalBroker
import SignalWorker
import WorkerOperations
import Testing
import ZeroMQ

/// Safe by default: `serve` and `broker` refuse to bind an address reachable from the network
/// without authentication unless the operator opts out by name (`--allow-unauthenticated`).
@Suite("unauthenticated network binds are refused")
struct SafeBindTests {
    @Test("serve --bind tcp://0.0.0.0:* without CURVE: exit 1 with why and how; with --allow-unauthenticated (or its variable) it serves and warns")
    func workerNetworkBindNeedsCurveOrOptOut() async throws {
        let database = try await SQLiteFixture.make("safe-bind-db")
        defer { database.remove() }
        let exposed = ["serve", "--store", database.storeURL, "--bind", "tcp://0.0.0.0:*", "--log-format", "json"]

        let refused = try await ChildProcess.runWorkerCommand(exposed)
        let output = refused.output.replacingOccurrences(of: "\\/", with: "/")  // JSON escapes slashes
        #expect(refused.exit == CommandLineTests.failure, "\(output)")
        #expect(output.contains("refusing to bind the worker's --bind tcp://0.0.0.0:* without authentication"), "\(output)")
        #expect(output.contains("--curve-secret-key-file and --curve-allowed-clients"), "\(output)")
        #expect(output.contains("--allow-unauthenticated"), "\(output)")
        #expect(!output.contains("\"listening\""), "\(output)")
        #expect(!output.contains("checking the schema"), "refused before the store is opened: \(output)")

        try await withWorker(exposed + ["--allow-unauthenticated"]) { worker in
            #expect(worker.logs.contains { $0.level == "warning" && $0.message.contains("WITHOUT CURVE") })
            let client = try TestClient(worker.endpoint.replacingOccurrences(of: "0.0.0.0", with: "127.0.0.1"))
            defer { client.close() }
            #expect(try await client.request(Messages().ping()).isOK("pong"))
        }
        try await withWorker(exposed, environment: ["SIGNAL_WORKER_ALLOW_UNAUTHENTICATED": "1"]) { worker in
            #expect(worker.logs.contains { $0.level == "warning" && $0.message.contains("WITHOUT CURVE") })
        }
    }

    @Test("loopback, ipc:// and --connect need no opt-out")
    func localBindsAndConnectAreAllowed() async throws {
        let database = try await SQLiteFixture.make("safe-bind-local-db")
        defer { database.remove() }
        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL, metrics: false)) { worker in
            #expect(!worker.logs.contains { $0.message.contains("WITHOUT CURVE") })
        }
        let socketPath = database.directory.appendingPathComponent("worker.sock").path
        try await withWorker(["serve", "--store", database.storeURL, "--bind", "ipc://\(socketPath)", "--log-format", "json"]) {
            worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            #expect(try await client.request(Messages().ping()).isOK("pong"))
        }
        // A worker behind a broker connects; the address is not checked (TEST-NET-1: nothing answers).
        try await withWorker(BrokerProcess.workerArguments(store: database.storeURL, backend: "tcp://192.0.2.1:5558")) { worker in
            #expect(worker.endpoint == "tcp://192.0.2.1:5558")
        }
    }

    @Test("broker: a network frontend or backend without authentication is refused; --allow-unauthenticated lets it start")
    func brokerNetworkBindsNeedOptOut() async throws {
        for (frontend, backend, role) in [
            ("tcp://0.0.0.0:*", "tcp://127.0.0.1:*", "--frontend"), ("tcp://127.0.0.1:*", "tcp://0.0.0.0:*", "--backend"),
        ] {
            let arguments = ["broker", "--frontend", frontend, "--backend", backend, "--log-format", "json"]
            let refused = try await ChildProcess.runWorkerCommand(arguments)
            let output = refused.output.replacingOccurrences(of: "\\/", with: "/")  // JSON escapes slashes
            #expect(refused.exit == CommandLineTests.failure, "\(output)")
            #expect(output.contains("refusing to bind the broker's \(role) tcp://0.0.0.0:*"), "\(output)")
            #expect(output.contains("--allow-unauthenticated"), "\(output)")

            try await withBroker(arguments + ["--allow-unauthenticated"]) { broker in
                #expect(broker.logs.contains { $0.level == "warning" && $0.message.contains("reachable from the network") })
            }
        }
    }

    @Test("what counts as local: loopback literals, localhost, lo, ipc, inproc; not names that merely start with 127.")
    func endpointLocality() {
        for local in [
            "tcp://127.0.0.1:5557", "tcp://127.1.2.3:1", "tcp://[::1]:5557", "tcp://[0:0:0:0:0:0:0:1]:1", "tcp://localhost:1",
            "tcp://lo:1", "ipc:///run/signal-worker.sock", "inproc://x",
        ] {
            #expect(endpointIsLocal(local), "\(local)")
        }
        for exposed in [
            "tcp://0.0.0.0:5557", "tcp://*:5557", "tcp://10.0.0.5:5557", "tcp://127.example.com:1", "tcp://[::]:1",
            "tcp://eth0:1", "tcp://[::ffff:10.0.0.1]:1", "udp://127.0.0.1:1", "tcp://128.0.0.1:1",
        ] {
            #expect(!endpointIsLocal(exposed), "\(exposed)")
        }
    }
}
