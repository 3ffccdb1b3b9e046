import Foundation
import GRDB
import SignalBroker
import SignalWorker
import WorkerOperations
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `signal-worker` command line: exit statuses, messages, environment variables.
@Suite("signal-worker command line")
struct CommandLineTests {
    static let success = ChildProcess.Exit(status: 0, signalled: false)
    static let failure = ChildProcess.Exit(status: 1, signalled: false)
    static let schemaError = ChildProcess.Exit(status: 2, signalled: false)

    @Test("check on a database without Django's tables exits 2, names the missing table and says to migrate")
    func checkEmptyDatabase() async throws {
        let directory = try SQLiteFixture.emptyDirectory("cli-check-empty")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("empty.sqlite3").path
        // A valid SQLite file with no tables at all.
        try await DatabaseQueue(path: path).write { db in try db.execute(sql: "CREATE TABLE t (x); DROP TABLE t") }

        let result = try await ChildProcess.runWorkerCommand(["check", "--store", "sqlite://\(path)"])
        #expect(result.exit == Self.schemaError, "\(result.output)")
        #expect(result.output.contains("accounts_userprofile"), "\(result.output)")
        #expect(result.output.contains("migrate"), "\(result.output)")
        let tables = try await DatabaseQueue(path: path).read { db in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master") }
        #expect(tables.isEmpty, "check must not create tables: \(tables)")
    }

    @Test(
        "check on a copy of Django's migrated database exits 0",
        .enabled(if: TestEnvironment.djangoSQLiteAvailable("check on Django's SQLite database")))
    func checkDjangoDatabase() async throws {
        let database = try await SQLiteFixture.make("cli-check-django")
        defer { database.remove() }
        let result = try await ChildProcess.runWorkerCommand(["check", "--store", database.storeURL])
        #expect(result.exit == Self.success, "\(result.output)")
        #expect(result.stdout.contains("schema OK"), "\(result.output)")
    }

    @Test(
        "a database with the previous release's worker tables is upgraded once: serve logs it, order holds, check prints the version",
        .enabled(if: TestEnvironment.djangoSQLiteAvailable("upgrade of the worker tables")))
    func upgradePreviousReleaseTables() async throws {
        let database = try await SQLiteFixture.make("cli-upgrade")
        defer { database.remove() }
        try database.insertUsers([1])
        // What the previous release's worker left: its two tables, the last seq of user 1 at 10.
        try await database.open().write { db in
            try db.execute(
                sql: """
                    CREATE TABLE "signal_worker_applied" ("message_id" text NOT NULL PRIMARY KEY, "applied_at" real NOT NULL) WITHOUT ROWID;
                    CREATE TABLE "signal_worker_user_sequence" ("user_id" integer NOT NULL PRIMARY KEY, "last_seq" bigint NOT NULL);
                    INSERT INTO "signal_worker_user_sequence" VALUES (1, 10);
                    INSERT INTO "accounts_userprofile" ("profile_type", "sex", "birthdate", "user_id") VALUES ('personal', NULL, NULL, 1);
                    """)
        }
        let messages = Messages()
        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL, metrics: false)) { worker in
            let upgrade = worker.logs.first { $0.message.hasPrefix("worker tables upgraded from schema version 1 to 2") }
            #expect(upgrade != nil, "\(worker.logs.map(\.message))")
            #expect(upgrade?.message.contains("1 last sequence") == true, "\(String(describing: upgrade))")
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            let older = try await client.request(messages.signal(user: 1, created: false, data: ["sex": "F"], seq: 9))
            #expect(older.isOK("stale") && older.lastSequence == 10, "\(older)")
            #expect(try await client.request(messages.signal(user: 1, created: false, data: ["sex": "F"], seq: 11)).isOK("updated"))
        }
        #expect(!(try database.tableNames().contains("signal_worker_user_sequence")))
        let check = try await ChildProcess.runWorkerCommand(["check", "--store", database.storeURL])
        #expect(check.exit == Self.success, "\(check.output)")
        #expect(check.stdout.contains("worker tables at schema version 2"), "\(check.output)")
    }

    @Test("check against a PostgreSQL server that cannot be reached exits 1 (not 2: the schema is unknown)")
    func checkUnreachablePostgres() async throws {
        try await Self.withDeadPort { port in
            let result = try await ChildProcess.runWorkerCommand(
                ["check", "--store", "postgres://postgres@127.0.0.1:\(port)/django"], timeout: .seconds(30))
            #expect(result.exit == Self.failure, "\(result.output)")
            #expect(result.stderr.contains("127.0.0.1:\(port)"), "the error names the server: \(result.output)")
        }
    }

    @Test("serve on a missing SQLite file exits 2 and points at --create-schema; nothing is created")
    func serveMissingFile() async throws {
        let directory = try SQLiteFixture.emptyDirectory("cli-serve-missing")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("missing.sqlite3").path
        let result = try await ChildProcess.runWorkerCommand([
            "serve", "--store", "sqlite://\(path)", "--bind", "tcp://127.0.0.1:*",
        ])
        #expect(result.exit == Self.schemaError, "\(result.output)")
        #expect(result.output.contains("--create-schema"), "\(result.output)")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test("serve --create-schema on a new file creates the tables and applies requests")
    func serveCreateSchema() async throws {
        let directory = try SQLiteFixture.emptyDirectory("cli-create-schema")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("new.sqlite3").path
        let database = SQLiteFixture(directory: directory, path: path)
        let messages = Messages()

        try await withWorker(WorkerProcess.serveArguments(store: "sqlite://\(path)", extra: ["--create-schema"])) {
            worker in
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            #expect(try await client.request(messages.ping()).isOK("pong"))
            try database.insertUsers([1])  // the worker made auth_user
            let reply = try await client.request(messages.signal(user: 1, created: true, data: ["sex": "F"]))
            #expect(reply.isOK("created"), "\(reply)")
            #expect(try database.profile(user: 1) == ProfileRow(profileType: "personal", sex: "F", birthdate: nil))
        }
    }

    @Test("ping exits 0 against a running worker and 1, quickly, against a port nobody listens on")
    func ping() async throws {
        let database = try await SQLiteFixture.make("cli-ping")
        defer { database.remove() }
        try await withWorker(WorkerProcess.serveArguments(store: database.storeURL, metrics: false)) { worker in
            let alive = try await ChildProcess.runWorkerCommand(["ping", "--connect", worker.endpoint])
            #expect(alive.exit == Self.success, "\(alive.output)")
            #expect(alive.stdout.contains("pong"), "\(alive.output)")
            // Durations print as the bridge prints them: milliseconds with two decimals.
            #expect(alive.stdout.contains(#/in \d+\.\d\d ms/#), "\(alive.output)")
        }

        try await Self.withDeadPort { deadPort in
            let dead = try await ChildProcess.runWorkerCommand(
                ["ping", "--connect", "tcp://127.0.0.1:\(deadPort)", "--timeout-ms", "300"], timeout: .seconds(10))
            #expect(dead.exit == Self.failure, "\(dead.output)")
            #expect(dead.duration < .seconds(5), "ping with --timeout-ms 300 took \(dead.duration)")
            #expect(dead.stderr.contains("127.0.0.1:\(deadPort)"), "the error names the endpoint: \(dead.output)")
        }
    }

    @Test("serve --help documents the environment variables")
    func serveHelp() async throws {
        let result = try await ChildProcess.runWorkerCommand(["serve", "--help"])
        #expect(result.exit == Self.success, "\(result.output)")
        for variable in ["SIGNAL_WORKER_STORE", "SIGNAL_WORKER_BIND", "SIGNAL_WORKER_METRICS_BIND", "SIGNAL_WORKER_MAX_BATCH"] {
            #expect(result.stdout.contains(variable), "serve --help does not mention \(variable)")
        }
        #expect(result.stdout.contains("--create-schema"))
    }

    @Test("version and --version print the version")
    func version() async throws {
        let result = try await ChildProcess.runWorkerCommand(["version"])
        #expect(result.exit == Self.success, "\(result.output)")
        #expect(result.stdout.contains("signal-worker \(SignalWorkerVersion.current)"), "\(result.stdout)")
        #expect(result.stdout.contains("wire protocol v1"), "\(result.stdout)")
        #expect(result.stdout.contains("libzmq"), "\(result.stdout)")

        let flag = try await ChildProcess.runWorkerCommand(["--version"])
        #expect(flag.exit == Self.success)
        #expect(flag.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == SignalWorkerVersion.current)
    }

    @Test("serve takes its options from SIGNAL_WORKER_* variables")
    func environmentVariables() async throws {
        let database = try await SQLiteFixture.make("cli-env")
        defer { database.remove() }
        try database.insertUsers([1])
        let messages = Messages()
        let environment = [
            "SIGNAL_WORKER_STORE": database.storeURL, "SIGNAL_WORKER_BIND": "tcp://127.0.0.1:*",
            "SIGNAL_WORKER_LOG_FORMAT": "json", "SIGNAL_WORKER_MAX_REQUEST_BYTES": "512",
            "SIGNAL_WORKER_METRICS_BIND": "127.0.0.1:0",
        ]
        try await withWorker(["serve"], environment: environment) { worker in
            #expect(worker.endpoint.hasPrefix("tcp://127.0.0.1:"), "\(worker.endpoint)")
            #expect(worker.port != nil && worker.port != 5557, "the * port must be resolved: \(worker.endpoint)")
            #expect(worker.metricsURL != nil)
            let client = try TestClient(worker.endpoint)
            defer { client.close() }
            let big = try await client.request(messages.signal(user: 1, created: true, padding: 600))
            #expect(big.isError("bad_request"), "SIGNAL_WORKER_MAX_REQUEST_BYTES=512 not applied: \(big)")
            let small = try await client.request(messages.signal(user: 1, created: true))
            #expect(small.isOK("created"), "\(small)")
            #expect(try database.profile(user: 1) != nil)
        }
    }

    @Test("a command-line option wins over its environment variable")
    func optionBeatsEnvironment() async throws {
        let database = try await SQLiteFixture.make("cli-env-precedence")
        defer { database.remove() }
        let environment = ["SIGNAL_WORKER_BIND": "tcp://127.0.0.1:1", "SIGNAL_WORKER_LOG_FORMAT": "json"]
        try await withWorker(
            ["serve", "--store", database.storeURL, "--bind", "tcp://127.0.0.1:*"], environment: environment
        ) { worker in
            #expect(worker.port != 1, "--bind must win over SIGNAL_WORKER_BIND: \(worker.endpoint)")
        }
    }

    @Test("SIGTERM or SIGINT on an idle worker exits 0 promptly and logs stopped", arguments: [SIGTERM, SIGINT])
    func idleShutdown(signal: Int32) async throws {
        let database = try await SQLiteFixture.make("cli-idle-stop")
        defer { database.remove() }
        let worker = try await WorkerProcess.start(WorkerProcess.serveArguments(store: database.storeURL))
        defer { worker.child.killNow() }
        let started = ContinuousClock.now
        worker.child.send(signal: signal)
        let exit = await worker.child.waitForExit(timeout: .seconds(10))
        #expect(exit == Self.success, "\(exit.map(\.description) ?? "still running"); stderr:\n\(worker.child.stderrTail())")
        // Timed to the exit itself: the polling above may wake late when other tests keep the
        // cooperative threads busy (it measured 8 s under load for a worker that took 15 ms).
        let exited = worker.child.exitedAt ?? .now
        #expect(started.duration(to: exited) < .seconds(5))
        #expect(worker.logs.contains { $0.message.hasPrefix("stopped") }, "\(worker.child.stderrTail())")
    }

    /// Runs `body` with a TCP port on 127.0.0.1 that nothing listens on: bound but not listening, so
    /// connections are refused and no other process (another test's worker) can take it meanwhile.
    static func withDeadPort<T>(_ body: (Int) async throws -> T) async throws -> T {
        #if canImport(Glibc)
        let streamType = Int32(SOCK_STREAM.rawValue)
        #else
        let streamType = SOCK_STREAM
        #endif
        let descriptor = socket(AF_INET, streamType, 0)
        guard descriptor >= 0 else { throw TestFailure("socket() failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(descriptor, generic, length) == 0 && getsockname(descriptor, generic, &length) == 0
            }
        }
        guard bound else { throw TestFailure("bind() failed") }
        return try await body(Int(UInt16(bigEndian: address.sin_port)))
    }
}
