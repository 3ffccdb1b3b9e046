// worker-benchmark: the release `signal-worker` as a child process, driven over ZeroMQ like the Django
// shim drives it, on SQLite and PostgreSQL: pipelined throughput (creates, then updates), one-at-a-time
// latency, and the worker's peak RSS. Prints a table and writes it as Markdown.
//
//   Benchmarks/build signal-worker worker-benchmark   (the product's worker, then this package's driver)
//   .build/release/worker-benchmark [--worker PATH] [--requests N] [--postgres-url URL] [--output PATH]
//   (--help lists every option)
//
// PostgreSQL runs when --postgres-url or SIGNAL_WORKER_TEST_POSTGRES_URL names a server (a fresh
// database is created on it and dropped afterwards). Needs the `sqlite3` and `psql` command-line tools.

import ArgumentParser
import Foundation
import SignalProtocol
import SignalBroker
import SignalWorker
import WorkerOperations
import ZeroMQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Arguments

/// A store the benchmark can run on.
enum Store: String, CaseIterable, ExpressibleByArgument {
    case sqlite, postgres
}

struct Arguments: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker-benchmark",
        abstract: "The release signal-worker as a child process, driven over ZeroMQ: pipelined throughput, one-at-a-time latency, peak RSS, on SQLite and PostgreSQL.")

    @Option(help: "The signal-worker to measure.")
    var worker = ".build/release/signal-worker"

    @Option(help: "Creates, then as many updates, per store.")
    var requests = 100_000

    @Option(help: "One-at-a-time requests for the latency percentiles.")
    var latencyRequests = 2_000

    @Option(help: "Requests in flight during the throughput runs (at least 1000).")
    var window = 2_000

    @Option(help: "Rounds per store, each on a fresh database and worker.")
    var rounds = 3

    @Option(
        name: .customLong("postgres-url"),
        help: "A PostgreSQL server (default $SIGNAL_WORKER_TEST_POSTGRES_URL; none: SQLite only).")
    var postgresURLOption: String?

    @Option(name: .customLong("only"), help: "Run one store only.")
    var onlyStore: Store?

    @Option(
        name: .customLong("worker-arg"), parsing: .unconditionalSingleValue,
        help: "Pass ARG to `signal-worker serve` (repeat; e.g. --worker-arg --max-batch --worker-arg 1).")
    var workerArguments: [String] = []

    @Flag(help: "Keep the SQLite directory and the PostgreSQL database.")
    var keep = false

    @Option(name: .customLong("output"), help: "Markdown report (default Benchmarks/results/worker.md; soak.md with --soak-seconds).")
    var outputOption: String?

    @Option(help: "Instead: pipelined updates on SQLite for this many seconds, worker RSS sampled every second.")
    var soakSeconds: Int?

    var postgresURL: String? {
        postgresURLOption ?? ProcessInfo.processInfo.environment["SIGNAL_WORKER_TEST_POSTGRES_URL"].flatMap {
            $0.isEmpty ? nil : $0
        }
    }

    var stores: Set<String> { Set((onlyStore.map { [$0] } ?? Store.allCases).map(\.rawValue)) }

    var output: String {
        outputOption ?? (soakSeconds == nil ? "Benchmarks/results/worker.md" : "Benchmarks/results/soak.md")
    }

    func validate() throws {
        guard requests > 0, latencyRequests > 0, rounds > 0 else {
            throw ValidationError("--requests, --latency-requests and --rounds must be positive")
        }
        guard window >= 1_000 else { throw ValidationError("--window must be at least 1000") }
        if let soakSeconds, soakSeconds <= 0 { throw ValidationError("--soak-seconds must be positive") }
        guard FileManager.default.isExecutableFile(atPath: worker) else {
            throw ValidationError("no worker at \(worker); build it: Benchmarks/build signal-worker")
        }
    }
}

struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Child processes

/// Runs a command to completion; returns its standard output, throws with its standard error on failure.
@discardableResult
func run(_ executable: String, _ arguments: [String], input: String? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let output = Pipe()
    let errors = Pipe()
    let stdin = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = input == nil ? FileHandle.nullDevice : stdin
    try process.run()
    if let input {
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
    }
    let outData = output.fileHandleForReading.readDataToEndOfFile()
    let errData = errors.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw BenchmarkError(
            "\(([executable] + arguments).joined(separator: " ")) failed (\(process.terminationStatus)): "
                + String(decoding: errData, as: UTF8.self))
    }
    return String(decoding: outData, as: UTF8.self)
}

/// The first of `candidates` that is executable, else `name` looked up on PATH.
func tool(_ name: String, preferring candidates: [String] = []) throws -> String {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    let all = candidates + path.split(separator: ":").map { "\($0)/\(name)" }
    guard let found = all.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw BenchmarkError("\(name) not found (install it: apt-get install \(name == "sqlite3" ? "sqlite3" : "postgresql-client"))")
    }
    return found
}

/// psql from the newest PostgreSQL installed (as the server), else from PATH.
func psqlTool() throws -> String {
    let versions = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? [])
        .compactMap(Int.init).sorted(by: >)
    return try tool("psql", preferring: versions.map { "/usr/lib/postgresql/\($0)/bin/psql" })
}

/// A running `signal-worker serve`, its standard error collected by a reader thread.
final class WorkerChild: @unchecked Sendable {  // the lock guards `lines`
    let process = Process()
    private let lock = NSLock()
    private var lines: [String] = []
    private(set) var endpoint = ""

    init(worker: String, store: String, extra: [String]) throws {
        process.executableURL = URL(fileURLWithPath: worker)
        process.arguments = ["serve", "--store", store, "--bind", "tcp://127.0.0.1:*", "--log-format", "json"] + extra
        // Info level (the default) logs only at start and stop; failed requests log a warning each.
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SIGNAL_WORKER_") }
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let handle = errors.fileHandleForReading
        let thread = Thread { [self] in
            var partial = Data()
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                partial.append(data)
                while let newline = partial.firstIndex(of: 0x0A) {
                    let line = String(decoding: partial[partial.startIndex..<newline], as: UTF8.self)
                    partial.removeSubrange(partial.startIndex...newline)
                    lock.withLock { lines.append(line) }
                }
            }
        }
        thread.start()
    }

    var pid: Int32 { process.processIdentifier }

    var log: [String] { lock.withLock { lines } }

    /// Waits for the "listening" line and takes the endpoint from it (the `*` port resolved).
    func waitForEndpoint(timeout: Duration) throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for line in log {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    object["msg"] as? String == "listening", let endpoint = object["endpoint"] as? String
                else { continue }
                self.endpoint = endpoint
                return
            }
            guard process.isRunning else {
                throw BenchmarkError("the worker exited (\(process.terminationStatus)):\n\(log.suffix(20).joined(separator: "\n"))")
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw BenchmarkError("the worker did not log \"listening\" within \(timeout):\n\(log.suffix(20).joined(separator: "\n"))")
    }

    /// SIGTERM and wait (SIGKILL after 15 s); returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        guard process.isRunning else { return process.terminationStatus }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        if process.isRunning { kill(pid, SIGKILL) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// `VmHWM` and `VmRSS` from /proc/<pid>/status, in KiB.
    func memory() -> (peak: Int, current: Int) {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        return (field("VmHWM"), field("VmRSS"))
    }

    /// User + system CPU time of the worker so far, in seconds.
    func cpuSeconds() -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After "(comm)": state is field 3, utime 14, stime 15 (1-based in proc(5)).
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

// MARK: - Requests

/// Time-ordered ids (UUIDv7 layout: the run's millisecond timestamp, then a counter), as the shim sends.
struct IDs {
    private let prefix: String
    private var counter: UInt64 = 0

    init() {
        let milliseconds = UInt64(Date().timeIntervalSince1970 * 1_000)
        let hex = String(milliseconds, radix: 16)
        let padded = String(repeating: "0", count: max(0, 12 - hex.count)) + hex
        prefix = "\(padded.prefix(8))-\(padded.dropFirst(8).prefix(4))-7000-8"
    }

    mutating func next() -> String {
        counter += 1
        let hex = String(counter, radix: 16)
        return prefix + "000-" + String(repeating: "0", count: max(0, 12 - hex.count)) + hex
    }
}

/// A `post_save` request as the shim builds it (about 450 bytes).
func request(id: String, seq: Int, user: Int, created: Bool, data: String) -> [UInt8] {
    Array(
        """
        {"v":1,"id":"\(id)","seq":\(seq),"signal":"post_save","sender":"auth.user","db":"default",\
        "created":\(created),"raw":false,"update_fields":null,"sent_at":"2026-11-25T13:00:00.123456Z",\
        "instance":{"model":"auth.user","pk":\(user),"fields":{"username":"user\(user)","email":"user\(user)@example.com",\
        "first_name":"Ann","last_name":"Example","is_active":true}},"attrs":{"_profile_data":\(data)}}
        """.utf8)
}

// MARK: - Measurements

/// A DEALER connected to the worker.
final class Client {
    let socket: Socket
    let poller = Poller()
    var buffer: [UInt8] = []

    init(endpoint: String) throws {
        let context = try Context(ioThreads: 1, defaultLinger: .zero)
        socket = try Socket(context: context, type: .dealer)
        try socket.set(.sendHighWaterMark, 0)
        try socket.set(.receiveHighWaterMark, 0)
        try socket.connect(endpoint)
        poller.register(socket, for: .readable)
    }

    func close() {
        let context = socket.context
        socket.close()
        context.terminate()
    }

    /// Waits up to `timeout` for a reply; returns false on timeout.
    func waitReadable(_ timeout: Duration) throws -> Bool {
        try !poller.poll(timeout: timeout).isEmpty
    }

    /// Takes one reply if there is one; checks it is `ok` with `action`.
    func takeReply(expecting action: [UInt8]) throws -> Bool? {
        do {
            try socket.receive(into: &buffer, flags: .dontWait)
        } catch {
            guard error.code == .wouldBlock else { throw error }
            return nil
        }
        return contains(buffer, okStatus) && contains(buffer, action)
    }
}

let okStatus = Array(#""status":"ok""#.utf8)

func actionBytes(_ action: String) -> [UInt8] { Array(#""action":"\#(action)""#.utf8) }

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard haystack.count >= needle.count, let first = needle.first else { return false }
    var index = 0
    let last = haystack.count - needle.count
    while index <= last {
        if haystack[index] == first, haystack[index..<index + needle.count].elementsEqual(needle) { return true }
        index += 1
    }
    return false
}

/// This process's user + system CPU time (the client: its thread and libzmq's I/O thread).
func ownCPUSeconds() -> Double {
    var usage = rusage()
    #if canImport(Glibc)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
    getrusage(RUSAGE_SELF, &usage)
    #endif
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

struct Throughput {
    var requests: Int
    var seconds: Double
    var notOK: Int
    var workerCPUSeconds: Double
    var clientCPUSeconds: Double
    var perSecond: Double { Double(requests) / seconds }
}

/// Sends `payloads` keeping `window` in flight, reads every reply; the clock runs from the first send to the last reply.
func pipelined(_ payloads: [[UInt8]], action: String, window: Int, client: Client, worker: WorkerChild) throws -> Throughput {
    let expected = actionBytes(action)
    var sent = 0
    var received = 0
    var notOK = 0
    let cpuBefore = worker.cpuSeconds()
    let clientBefore = ownCPUSeconds()
    let started = ContinuousClock.now
    while received < payloads.count {
        while sent < payloads.count, sent - received < window {
            try client.socket.send(payloads[sent], flags: .dontWait)
            sent += 1
        }
        guard try client.waitReadable(.seconds(10)) else {
            throw BenchmarkError("no reply for 10 s (\(received) of \(payloads.count) received)")
        }
        while let ok = try client.takeReply(expecting: expected) {
            received += 1
            if !ok {
                notOK += 1
                if notOK <= 3 { print("  unexpected reply: \(String(decoding: client.buffer, as: UTF8.self))") }
            }
            // Refill the window once half of it came back.
            if sent < payloads.count, sent - received <= window / 2 { break }
        }
    }
    return Throughput(requests: payloads.count, seconds: seconds(started.duration(to: .now)), notOK: notOK, workerCPUSeconds: worker.cpuSeconds() - cpuBefore,
        clientCPUSeconds: ownCPUSeconds() - clientBefore)
}

struct Latency {
    var samples: [Double]  // microseconds, sorted
    var notOK: Int

    func percentile(_ p: Double) -> Double {
        guard !samples.isEmpty else { return 0 }
        let rank = Int((p / 100 * Double(samples.count)).rounded(.up)) - 1
        return samples[max(0, min(samples.count - 1, rank))]
    }
    var maximum: Double { samples.last ?? 0 }
}

/// Sends each payload and waits for its reply before the next.
func oneAtATime(_ payloads: [[UInt8]], action: String, client: Client) throws -> Latency {
    let expected = actionBytes(action)
    var samples: [Double] = []
    samples.reserveCapacity(payloads.count)
    var notOK = 0
    for payload in payloads {
        let started = ContinuousClock.now
        try client.socket.send(payload, flags: .dontWait)
        guard try client.waitReadable(.seconds(10)) else { throw BenchmarkError("no reply for 10 s") }
        guard let ok = try client.takeReply(expecting: expected) else { throw BenchmarkError("readable but no reply") }
        samples.append(seconds(started.duration(to: .now)) * 1e6)
        if !ok { notOK += 1 }
    }
    return Latency(samples: samples.sorted(), notOK: notOK)
}

// MARK: - Stores

struct StoreSetup {
    var name: String
    var store: String
    /// `serve` options this store is measured with (besides `--worker-arg`).
    var workerArguments: [String] = []
    /// The database's directory (SQLite): where the disk's own sync latency is measured.
    var directory: String?
    var cleanup: () -> Void
}

/// The disk alone, in the database's directory: `samples` appends of one 4 KiB page, each
/// followed by `fdatasync`, which is what an SQLite commit in WAL mode with `synchronous = FULL`
/// waits for. No commit can be acknowledged faster than this.
func diskSyncLatency(in directory: String, samples: Int) throws -> Latency {
    let path = directory + "/fsync-probe"
    let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
    guard descriptor >= 0 else { throw BenchmarkError("cannot open \(path): errno \(errno)") }
    defer {
        close(descriptor)
        unlink(path)
    }
    let page = [UInt8](repeating: 0x5A, count: 4_096)
    var times: [Double] = []
    times.reserveCapacity(samples)
    for _ in 0..<samples {
        let started = ContinuousClock.now
        let written = page.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == page.count, fdatasync(descriptor) == 0 else { throw BenchmarkError("write/fdatasync failed: errno \(errno)") }
        times.append(seconds(started.duration(to: .now)) * 1e6)
    }
    return Latency(samples: times.sorted(), notOK: 0)
}

/// A new SQLite file with the Django-compatible schema (`check --create-schema`) and `users` users;
/// `synchronous` is the worker's `--sqlite-synchronous`.
func sqliteStore(worker: String, users: Int, synchronous: String, keep: Bool) throws -> StoreSetup {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("worker-benchmark-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let path = directory.appendingPathComponent("db.sqlite3").path
    try run(worker, ["check", "--store", "sqlite://\(path)", "--create-schema"])
    try run(
        try tool("sqlite3"), [path],
        input: """
            WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < \(users))
            INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
            SELECT x, '!', 0, 'user' || x, '', '', '', 0, 1, '2026-11-25 13:00:00' FROM n;
            """)
    let name = synchronous == "full" ? "SQLite" : "SQLite (\(synchronous.uppercased()))"
    return StoreSetup(
        name: name, store: "sqlite://\(path)", workerArguments: ["--sqlite-synchronous", synchronous], directory: directory.path
    ) {
        if keep { print("kept \(directory.path)") } else { try? FileManager.default.removeItem(at: directory) }
    }
}

/// A new database on the server of `url`, with the Django-compatible schema and `users` users.
func postgresStore(url: String, worker: String, users: Int, keep: Bool) throws -> StoreSetup {
    guard var components = URLComponents(string: url) else { throw BenchmarkError("bad PostgreSQL URL \(url)") }
    let psql = try psqlTool()
    let database = "worker_benchmark_\(UUID().uuidString.prefix(8).lowercased())"
    components.path = "/postgres"
    let admin = components.string ?? url
    components.path = "/\(database)"
    let target = components.string ?? url
    try run(psql, ["--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", admin, "-c", "CREATE DATABASE \(database)"])
    try run(worker, ["check", "--store", target, "--create-schema"])
    try run(
        psql,
        [
            "--no-psqlrc", "-q", "-v", "ON_ERROR_STOP=1", "--dbname", target, "-c",
            """
            INSERT INTO auth_user (id, password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
            SELECT g, '!', false, 'user' || g, '', '', '', false, true, now() FROM generate_series(1, \(users)) AS g
            """,
            "-c", "VACUUM ANALYZE auth_user",
        ])
    return StoreSetup(name: "PostgreSQL", store: target) {
        if keep {
            print("kept database \(database)")
        } else {
            _ = try? run(psql, ["--no-psqlrc", "-q", "--dbname", admin, "-c", "DROP DATABASE IF EXISTS \(database) WITH (FORCE)"])
        }
    }
}

struct StoreResult {
    var name: String
    var creates: Throughput
    var updates: Throughput
    var latency: Latency
    /// Pings one at a time: the transport and the socket thread, no store.
    var pingLatency: Latency
    /// The disk's own sync latency beside the database (SQLite only).
    var diskSync: Latency?
    var peakRSSKiB: Int
    var rssKiB: Int
    var exitStatus: Int32
}

func measure(_ setup: StoreSetup, arguments: Arguments) throws -> StoreResult {
    let n = arguments.requests
    var ids = IDs()
    // Every payload is built before the clock starts: the client's CPU is shared with the worker.
    let creates = (1...n).map { request(id: ids.next(), seq: $0, user: $0, created: true,
        data: #"{"profile_type":"business","sex":"F","birthdate":"1990-01-02"}"#) }
    let updates = (1...n).map { request(id: ids.next(), seq: n + $0, user: $0, created: false,
        data: #"{"sex":"M","birthdate":null}"#) }
    let latencyUsers = min(n, arguments.latencyRequests)
    let singles = (0..<arguments.latencyRequests).map { index in
        request(id: ids.next(), seq: 2 * n + index + 1, user: index % latencyUsers + 1, created: false, data: #"{"profile_type":"personal"}"#)
    }

    let worker = try WorkerChild(worker: arguments.worker, store: setup.store, extra: setup.workerArguments + arguments.workerArguments)
    defer { worker.stop() }
    try worker.waitForEndpoint(timeout: .seconds(30))
    let client = try Client(endpoint: worker.endpoint)
    defer { client.close() }

    // Warm up the connection (and PostgreSQL's pool) with pings.
    for index in 0..<100 {
        try client.socket.send(Array(#"{"v":1,"id":"warm-\#(index)","type":"ping"}"#.utf8))
        guard try client.waitReadable(.seconds(10)), try client.takeReply(expecting: actionBytes("pong")) == true else {
            throw BenchmarkError("no pong from \(worker.endpoint)")
        }
    }

    print("\(setup.name): \(n) creates…")
    let createRun = try pipelined(creates, action: "created", window: arguments.window, client: client, worker: worker)
    print(String(format: "  %.0f req/s", createRun.perSecond))
    print("\(setup.name): \(n) updates…")
    let updateRun = try pipelined(updates, action: "updated", window: arguments.window, client: client, worker: worker)
    print(String(format: "  %.0f req/s", updateRun.perSecond))
    print("\(setup.name): \(singles.count) one-at-a-time updates…")
    let latency = try oneAtATime(singles, action: "updated", client: client)
    print(String(format: "  p50 %.0f µs, p99 %.0f µs", latency.percentile(50), latency.percentile(99)))
    print("\(setup.name): \(singles.count) one-at-a-time pings (no store)…")
    let pings = (0..<singles.count).map { Array(#"{"v":1,"id":"ping-\#($0)","type":"ping"}"#.utf8) }
    let pingLatency = try oneAtATime(pings, action: "pong", client: client)
    print(String(format: "  p50 %.0f µs, p99 %.0f µs", pingLatency.percentile(50), pingLatency.percentile(99)))
    let memory = worker.memory()
    let status = worker.stop()
    var diskSync: Latency?
    if let directory = setup.directory {
        print("\(setup.name): \(singles.count) 4 KiB appends + fdatasync beside the database (the disk alone)…")
        diskSync = try diskSyncLatency(in: directory, samples: singles.count)
        print(String(format: "  p50 %.0f µs, p99 %.0f µs", diskSync!.percentile(50), diskSync!.percentile(99)))
    }
    return StoreResult(
        name: setup.name, creates: createRun, updates: updateRun, latency: latency, pingLatency: pingLatency, diskSync: diskSync,
        peakRSSKiB: memory.peak, rssKiB: memory.current, exitStatus: status)
}

// MARK: - Report

func verdict(_ ok: Bool) -> String { ok ? "yes" : "**NO**" }

/// Each metric's best round (the machine is shared: noise only ever makes a round worse), except
/// the peak RSS, which is the largest of all rounds.
func best(of rounds: [StoreResult]) -> StoreResult {
    var result = rounds[0]
    result.creates = rounds.map(\.creates).max { $0.perSecond < $1.perSecond }!
    result.updates = rounds.map(\.updates).max { $0.perSecond < $1.perSecond }!
    result.latency = rounds.map(\.latency).min { $0.percentile(99) < $1.percentile(99) }!
    result.pingLatency = rounds.map(\.pingLatency).min { $0.percentile(99) < $1.percentile(99) }!
    result.diskSync = rounds.compactMap(\.diskSync).min { $0.percentile(99) < $1.percentile(99) }
    result.peakRSSKiB = rounds.map(\.peakRSSKiB).max()!
    result.rssKiB = rounds.map(\.rssKiB).max()!
    result.exitStatus = rounds.map(\.exitStatus).first { $0 != 0 } ?? 0
    return result
}

/// The commit the reports name: what Benchmarks/build built (`SIGNAL_BENCH_CHECKOUT`, as the Python
/// reports read it through `signal_bench.checkout()`), else this checkout now, with
/// " + uncommitted changes" when tracked files outside Benchmarks/results differ from it.
func checkoutLabel() -> String {
    if let built = ProcessInfo.processInfo.environment["SIGNAL_BENCH_CHECKOUT"], !built.isEmpty { return built }
    let commit = (try? run(try tool("git"), ["rev-parse", "--short", "HEAD"]))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
    // Results written by earlier runs are not changes to what is measured.
    let status = ["status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)Benchmarks/results"]
    return commit + (((try? run(try tool("git"), status)) ?? "").isEmpty ? "" : " + uncommitted changes")
}

func report(_ rounds: [[StoreResult]], arguments: Arguments) -> String {
    let results = rounds.map(best(of:))
    let commit = checkoutLabel()
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let cpu = ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").split(separator: "\n")
        .first { $0.hasPrefix("model name") }.map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "?"
    let version = (try? run(arguments.worker, ["version"]))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
    var lines = [
        "# Worker benchmark",
        "",
        "- date: \(Date().formatted(.iso8601))",
        "- machine: \(cores) cores (`nproc`), \(cpu); client and worker share them",
        "- commit: \(commit)",
        "- worker: `\(arguments.worker)` — \(version)\(arguments.workerArguments.isEmpty ? "" : ", `serve \(arguments.workerArguments.joined(separator: " "))`")",
        "- load: \(arguments.requests) creates then \(arguments.requests) updates pipelined from one DEALER "
            + "(≤ \(arguments.window) in flight), then \(arguments.latencyRequests) updates one at a time; requests carry `seq` and "
            + "time-ordered ids, as the shim sends them; every reply checked `ok`",
        "- \(arguments.rounds) rounds per store, each on a fresh database and a fresh worker; the first table shows each "
            + "metric's best round (peak RSS: the largest), every round is listed at the end",
        "",
        "| store | creates/s | updates/s | target | p50 µs | p90 µs | p99 µs | max µs | p99 target | peak RSS MB | RSS target | CPU s / 100k: worker, client |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: |",
    ]
    for result in results {
        let isSQLite = result.name.hasPrefix("SQLite")
        let target = isSQLite ? 50_000.0 : 20_000.0
        let meetsThroughput = min(result.creates.perSecond, result.updates.perSecond) >= target
        let p99 = result.latency.percentile(99)
        let p99Target = isSQLite ? "≤ 1000: \(verdict(p99 <= 1_000))" : "—"
        let peakMB = Double(result.peakRSSKiB) / 1024
        let total = Double(result.creates.requests + result.updates.requests)
        let cpuPer100k = (result.creates.workerCPUSeconds + result.updates.workerCPUSeconds) / total * 100_000
        let clientPer100k = (result.creates.clientCPUSeconds + result.updates.clientCPUSeconds) / total * 100_000
        lines.append(
            "| \(result.name) | \(Int(result.creates.perSecond)) | \(Int(result.updates.perSecond)) | ≥ \(Int(target)): \(verdict(meetsThroughput)) "
                + "| \(Int(result.latency.percentile(50))) | \(Int(result.latency.percentile(90))) | \(Int(p99)) | \(Int(result.latency.maximum)) "
                + "| \(p99Target) | \(String(format: "%.1f", peakMB)) | ≤ 50: \(verdict(peakMB <= 50)) | \(String(format: "%.2f, %.2f", cpuPer100k, clientPer100k)) |")
    }
    lines += [
        "",
        "One at a time, the same worker: an update (socket thread → apply loop → store transaction → reply) "
            + "against a ping (answered by the socket thread, no store), and on SQLite the disk alone in the same "
            + "directory right after (a 4 KiB append + `fdatasync`, what a `synchronous = FULL` commit waits for):",
        "",
        "| store | request | p50 µs | p90 µs | p99 µs | max µs |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for result in results {
        var rows = [("update", result.latency), ("ping", result.pingLatency)]
        if let diskSync = result.diskSync { rows.append(("disk: 4 KiB + fdatasync", diskSync)) }
        for (label, latency) in rows {
            lines.append(
                "| \(result.name) | \(label) | \(Int(latency.percentile(50))) | \(Int(latency.percentile(90))) "
                    + "| \(Int(latency.percentile(99))) | \(Int(latency.maximum)) |")
        }
    }
    lines += [
        "",
        "Every round:",
        "",
        "| store | round | creates/s | updates/s | update p50 µs | update p99 µs | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for storeRounds in rounds {
        for (index, round) in storeRounds.enumerated() {
            lines.append(
                "| \(round.name) | \(index + 1) | \(Int(round.creates.perSecond)) | \(Int(round.updates.perSecond)) "
                    + "| \(Int(round.latency.percentile(50))) | \(Int(round.latency.percentile(99))) "
                    + "| \(String(format: "%.1f", Double(round.peakRSSKiB) / 1024)) |")
        }
    }
    lines.append("")
    for storeRounds in rounds {
        let problems = storeRounds.reduce(0) {
            $0 + $1.creates.notOK + $1.updates.notOK + $1.latency.notOK + $1.pingLatency.notOK
        }
        let statuses = Set(storeRounds.map(\.exitStatus)).sorted().map(String.init).joined(separator: ", ")
        lines.append(
            "- \(storeRounds[0].name): \(problems == 0 ? "every reply ok" : "**\(problems) replies not ok**") in every round; "
                + "worker exit status after SIGTERM: \(statuses).")
    }
    return lines.joined(separator: "\n") + "\n"
}

// MARK: - Soak

/// Pipelined updates (window `arguments.window`) for `seconds`, worker RSS every second.
func soak(seconds soakSeconds: Int, arguments: Arguments) throws -> String {
    let users = 10_000
    let setup = try sqliteStore(worker: arguments.worker, users: users, synchronous: "full", keep: arguments.keep)
    defer { setup.cleanup() }
    let worker = try WorkerChild(worker: arguments.worker, store: setup.store, extra: setup.workerArguments + arguments.workerArguments)
    defer { worker.stop() }
    try worker.waitForEndpoint(timeout: .seconds(30))
    let client = try Client(endpoint: worker.endpoint)
    defer { client.close() }
    var ids = IDs()
    let creates = (1...users).map { request(id: ids.next(), seq: $0, user: $0, created: true, data: "{}") }
    _ = try pipelined(creates, action: "created", window: arguments.window, client: client, worker: worker)

    var samples: [(second: Int, rssKiB: Int, requests: Int)] = []
    var total = 0
    var sequence = users
    let started = ContinuousClock.now
    for second in 1...soakSeconds {
        var chunk: [[UInt8]] = []
        // About a second of work per chunk; the chunk size follows the measured rate.
        let size = max(5_000, samples.last.map { $0.requests } ?? 20_000)
        chunk.reserveCapacity(size)
        for _ in 0..<size {
            sequence += 1
            chunk.append(request(id: ids.next(), seq: sequence, user: sequence % users + 1, created: false, data: #"{"sex":"F"}"#))
        }
        let run = try pipelined(chunk, action: "updated", window: arguments.window, client: client, worker: worker)
        guard run.notOK == 0 else { throw BenchmarkError("soak: \(run.notOK) replies not ok in second \(second)") }
        total += chunk.count
        samples.append((second, worker.memory().current, Int(Double(chunk.count) / run.seconds)))
        if seconds(started.duration(to: .now)) >= Double(soakSeconds) { break }
    }
    let elapsed = seconds(started.duration(to: .now))
    let rss = samples.map(\.rssKiB)
    let firstMinute = samples.prefix(60).map(\.rssKiB)
    let lastMinute = samples.suffix(60).map(\.rssKiB)
    func mib(_ kib: Double) -> String { String(format: "%.1f", kib / 1024) }
    func average(_ values: [Int]) -> Double { Double(values.reduce(0, +)) / Double(max(values.count, 1)) }
    let peakKiB = worker.memory().peak
    let status = worker.stop()
    var lines = [
        "# Worker soak",
        "",
        "- date: \(Date().formatted(.iso8601)); commit \(checkoutLabel())",
        "- command: `worker-benchmark --soak-seconds \(soakSeconds)`; SQLite (synchronous FULL), \(users) users, pipelined updates from one DEALER (≤ \(arguments.window) in flight), every reply checked `ok`",
        "- \(total) requests in \(String(format: "%.0f", elapsed)) s (\(Int(Double(total) / elapsed)) requests/s); worker exit status after SIGTERM: \(status)",
        "",
        "| worker RSS MiB | value |",
        "| --- | ---: |",
        "| min | \(mib(Double(rss.min() ?? 0))) |",
        "| max | \(mib(Double(rss.max() ?? 0))) |",
        "| average, first minute | \(mib(average(firstMinute))) |",
        "| average, last minute | \(mib(average(lastMinute))) |",
        "| peak (VmHWM) | \(mib(Double(peakKiB))) |",
        "",
        "RSS every 30 s: " + samples.filter { $0.second % 30 == 0 }.map { "\($0.second) s: \(mib(Double($0.rssKiB)))" }.joined(separator: ", "),
    ]
    lines.append("")
    return lines.joined(separator: "\n")
}

// MARK: - Main

let arguments = Arguments.parseOrExit()
signal(SIGPIPE, SIG_IGN)

if let soakSeconds = arguments.soakSeconds {
    do {
        let markdown = try soak(seconds: soakSeconds, arguments: arguments)
        print(markdown)
        try markdown.write(to: URL(fileURLWithPath: arguments.output), atomically: true, encoding: .utf8)
        print("written to \(arguments.output)")
        exit(0)
    } catch {
        print("soak failed: \(error)")
        exit(1)
    }
}

var rounds: [[StoreResult]] = []
var failed = false
var stores: [(name: String, setup: () throws -> StoreSetup)] = []
if arguments.stores.contains("sqlite") {
    // FULL is the default (an acked commit survives power loss); NORMAL shows what the disk's
    // sync costs, side by side.
    for synchronous in ["full", "normal"] {
        stores.append((synchronous == "full" ? "SQLite" : "SQLite (NORMAL)", {
            try sqliteStore(worker: arguments.worker, users: arguments.requests, synchronous: synchronous, keep: arguments.keep)
        }))
    }
}
if arguments.stores.contains("postgres") {
    if let url = arguments.postgresURL {
        stores.append(("PostgreSQL", {
            try postgresStore(url: url, worker: arguments.worker, users: arguments.requests, keep: arguments.keep)
        }))
    } else {
        print("PostgreSQL: skipped (no --postgres-url and no SIGNAL_WORKER_TEST_POSTGRES_URL)")
    }
}
for store in stores {
    var storeRounds: [StoreResult] = []
    for round in 1...arguments.rounds {
        print("== \(store.name), round \(round) of \(arguments.rounds)")
        do {
            let setup = try store.setup()
            defer { setup.cleanup() }
            storeRounds.append(try measure(setup, arguments: arguments))
        } catch {
            print("\(store.name): \(error)")
            failed = true
        }
    }
    if !storeRounds.isEmpty { rounds.append(storeRounds) }
}

let markdown = report(rounds, arguments: arguments)
print("")
print(markdown)
do {
    let url = URL(fileURLWithPath: arguments.output)
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try markdown.write(to: url, atomically: true, encoding: .utf8)
    print("written to \(arguments.output)")
} catch {
    print("cannot write \(arguments.output): \(error)")
    failed = true
}
exit(failed ? 1 : 0)
