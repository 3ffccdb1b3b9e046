import Foundation
import SignalBroker
import SignalWorker
import WorkerOperations
import Testing
import ZeroMQ

/// `serve` with CURVE: only the listed client keys get in, keys on disk are checked, and `keygen`
/// writes them safely. (A network bind without CURVE: `SafeBindTests`.)
@Suite("signal-worker CURVE security", .enabled(if: ZeroMQ.has(.curve), "libzmq was built without CURVE"))
struct CurveSecurityTests {
    /// A directory with `worker.key`/`worker.pub`, `clients/django.*` (allowed) and `stranger.*`
    /// (not allowed), all written by `signal-worker keygen`.
    struct Keys {
        let directory: URL
        var path: String { directory.path }
        var workerSecretFile: String { path + "/worker.key" }
        var allowedClients: String { path + "/clients" }

        static func make(_ label: String) async throws -> Keys {
            let directory = try SQLiteFixture.emptyDirectory(label)
            try FileManager.default.createDirectory(
                at: directory.appendingPathComponent("clients"), withIntermediateDirectories: true)
            for (name, folder) in [("worker", directory.path), ("django", directory.path + "/clients"), ("stranger", directory.path)] {
                let result = try await ChildProcess.runWorkerCommand(["keygen", "--name", name, "--directory", folder])
                guard result.exit == CommandLineTests.success else { throw TestFailure("keygen \(name): \(result.output)") }
            }
            return Keys(directory: directory)
        }

        func pair(_ file: String) throws -> CurveKeyPair { try CurveKeyFiles.readKeyPair(secretKeyFile: path + "/" + file) }
        func workerPublicKey() throws -> CurveKey { try CurveKeyFiles.readPublicKey(path + "/worker.pub") }
    }

    func serveArguments(_ database: SQLiteFixture, _ keys: Keys) -> [String] {
        WorkerProcess.serveArguments(
            store: database.storeURL, metrics: false,
            extra: ["--curve-secret-key-file", keys.workerSecretFile, "--curve-allowed-clients", keys.allowedClients])
    }

    @Test("an allowed client is served; an unknown key and a plaintext client get nothing and write nothing")
    func onlyAllowedClientsGetIn() async throws {
        let keys = try await Keys.make("curve-allowed")
        defer { try? FileManager.default.removeItem(at: keys.directory) }
        let database = try await SQLiteFixture.make("curve-allowed-db")
        defer { database.remove() }
        try database.insertUsers([1, 2, 3])
        let messages = Messages()

        try await withWorker(serveArguments(database, keys)) { worker in
            #expect(worker.logs.contains { $0.message == "signal-worker starting" && $0["curve"]?.hasPrefix("on") == true })
            // Named for `top -H` and `perf`: the socket thread and the authentication handler's.
            let threads = try worker.child.threadNames()
            #expect(threads.contains("worker-socket") && threads.contains("zap-handler"), "\(threads)")
            let server = try keys.workerPublicKey()

            let trusted = try TestClient(worker.endpoint, curve: (try keys.pair("clients/django.key"), server))
            defer { trusted.close() }
            let created = try await trusted.request(messages.signal(user: 1, created: true, data: ["sex": "F"]))
            #expect(created.isOK("created"), "\(created)")

            let stranger = try TestClient(worker.endpoint, curve: (try keys.pair("stranger.key"), server))
            defer { stranger.close() }
            try stranger.send(messages.signal(user: 2, created: true).json)
            #expect(try await stranger.receive(timeout: .milliseconds(700)) == nil, "an unknown key got a reply")

            let plaintext = try TestClient(worker.endpoint)
            defer { plaintext.close() }
            try plaintext.send(messages.signal(user: 3, created: true).json)
            #expect(try await plaintext.receive(timeout: .milliseconds(700)) == nil, "a plaintext client got a reply")

            // The trusted client still works, and only its message was written.
            #expect(try await trusted.request(messages.ping()).isOK("pong"))
            #expect(try database.profile(user: 1) != nil)
            #expect(try database.profile(user: 2) == nil)
            #expect(try database.profile(user: 3) == nil)
            #expect(try database.appliedIDs().count == 1)
            #expect(worker.logs.contains { $0.message.contains("refused a connection: unknown client public key") })
        }
    }

    @Test("ping --curve-* reaches a CURVE worker; without keys it fails with a hint")
    func pingWithCurve() async throws {
        let keys = try await Keys.make("curve-ping")
        defer { try? FileManager.default.removeItem(at: keys.directory) }
        let database = try await SQLiteFixture.make("curve-ping-db")
        defer { database.remove() }
        try await withWorker(serveArguments(database, keys)) { worker in
            let ok = try await ChildProcess.runWorkerCommand([
                "ping", "--connect", worker.endpoint, "--curve-secret-key-file", keys.path + "/clients/django.key",
                "--curve-server-key-file", keys.path + "/worker.pub",
            ])
            #expect(ok.exit == CommandLineTests.success, "\(ok.output)")
            let plain = try await ChildProcess.runWorkerCommand(["ping", "--connect", worker.endpoint, "--timeout-ms", "500"])
            #expect(plain.exit == CommandLineTests.failure)
            #expect(plain.stderr.contains("refuses plaintext clients"), "\(plain.output)")
        }
    }

    @Test("a secret key file readable by others, an empty or broken clients directory, half a configuration: no start, a clear error")
    func badKeyFilesAreRefused() async throws {
        let keys = try await Keys.make("curve-bad")
        defer { try? FileManager.default.removeItem(at: keys.directory) }
        let database = try await SQLiteFixture.make("curve-bad-db")
        defer { database.remove() }

        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keys.workerSecretFile)
        let open = try await ChildProcess.runWorkerCommand(serveArguments(database, keys))
        #expect(open.exit == CommandLineTests.failure, "\(open.output)")
        #expect(open.output.contains("chmod 600"), "\(open.output)")
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keys.workerSecretFile)

        let empty = keys.path + "/nobody"
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let none = try await ChildProcess.runWorkerCommand(
            WorkerProcess.serveArguments(
                store: database.storeURL, metrics: false,
                extra: ["--curve-secret-key-file", keys.workerSecretFile, "--curve-allowed-clients", empty]))
        #expect(none.exit == CommandLineTests.failure, "\(none.output)")
        #expect(none.output.contains("no client public keys"), "\(none.output)")

        try "not a key\n".write(toFile: keys.allowedClients + "/broken.pub", atomically: true, encoding: .utf8)
        let broken = try await ChildProcess.runWorkerCommand(serveArguments(database, keys))
        #expect(broken.exit == CommandLineTests.failure, "\(broken.output)")
        #expect(broken.output.contains("broken.pub is not a public key file"), "\(broken.output)")

        let half = try await ChildProcess.runWorkerCommand(
            WorkerProcess.serveArguments(
                store: database.storeURL, metrics: false, extra: ["--curve-secret-key-file", keys.workerSecretFile]))
        #expect(half.exit != CommandLineTests.success, "\(half.output)")
        #expect(half.output.contains("needs both"), "\(half.output)")
    }

    @Test("keygen writes the secret key with mode 0600, the public key beside it, and never overwrites")
    func keygenFiles() async throws {
        let keys = try await Keys.make("curve-keygen")
        defer { try? FileManager.default.removeItem(at: keys.directory) }
        let secretMode = try FileManager.default.attributesOfItem(atPath: keys.workerSecretFile)[.posixPermissions] as? NSNumber
        #expect(secretMode?.intValue == 0o600)
        let pair = try keys.pair("worker.key")
        #expect(try keys.workerPublicKey() == pair.publicKey, "worker.pub is the public half of worker.key")
        let before = try String(contentsOfFile: keys.workerSecretFile, encoding: .utf8)
        let again = try await ChildProcess.runWorkerCommand(["keygen", "--name", "worker", "--directory", keys.path])
        #expect(again.exit == CommandLineTests.failure)
        #expect(again.output.contains("not overwriting"), "\(again.output)")
        #expect(try String(contentsOfFile: keys.workerSecretFile, encoding: .utf8) == before)
    }
}
