import Foundation

/// A running `signal-worker broker` child with JSON logs, and the endpoints it logged.
///
/// Use ``withBroker(_:body:)``: it always ends the child, whatever the test does.
struct BrokerProcess: Sendable {
    /// The child process.
    let child: ChildProcess
    /// Where clients connect (from the "broker listening" line, `*` resolved).
    let frontend: String
    /// Where workers connect.
    let backend: String

    /// Broker arguments on free ports with JSON logs.
    static func arguments(heartbeat: String = "1s", extra: [String] = []) -> [String] {
        [
            "broker", "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*", "--heartbeat-interval", heartbeat,
            "--log-format", "json",
        ] + extra
    }

    /// `serve --connect` arguments for a worker behind `backend`.
    static func workerArguments(store: String, backend: String, heartbeat: String = "1s", extra: [String] = []) -> [String] {
        ["serve", "--store", store, "--connect", backend, "--heartbeat-interval", heartbeat, "--log-format", "json"] + extra
    }

    /// Starts the broker and waits (up to `timeout`) for its "broker listening" line.
    static func start(
        _ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(20)
    ) async throws -> BrokerProcess {
        let child = try ChildProcess(try TestEnvironment.workerBinary(), arguments, environment: environment)
        let deadline = ContinuousClock.now + timeout
        while true {
            let listening = LogLine.parse(child.lines(.standardError)).first { $0.message == "broker listening" }
            if let listening, let frontend = listening["frontend"], let backend = listening["backend"] {
                return BrokerProcess(child: child, frontend: frontend, backend: backend)
            }
            if let ended = child.ended {
                _ = await child.waitForExit(timeout: .seconds(1))
                throw TestFailure("`\(child.commandLine)` ended (\(ended)) before it listened; stderr:\n\(child.stderrTail())")
            }
            if ContinuousClock.now >= deadline {
                child.killNow()
                throw TestFailure("`\(child.commandLine)` logged no \"broker listening\" line within \(timeout); stderr:\n\(child.stderrTail())")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The JSON log lines so far.
    var logs: [LogLine] { LogLine.parse(child.lines(.standardError)) }

    /// The live worker count the broker logged last ("worker joined"/"worker left"), 0 before any.
    var liveWorkers: Int {
        logs.last { $0.message == "worker joined" || $0.message == "worker left" }?["live_workers"].flatMap { Int($0) } ?? 0
    }

    /// Waits until the broker's live count is `count`; throws after `timeout`.
    func waitForLiveWorkers(_ count: Int, timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while liveWorkers != count {
            if ContinuousClock.now >= deadline {
                throw TestFailure("the broker has \(liveWorkers) live workers, not \(count), after \(timeout); stderr:\n\(child.stderrTail())")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// Runs `body` with a broker started from `arguments`; the broker is stopped (SIGTERM, then SIGKILL)
/// afterwards, even when `body` throws.
func withBroker<T: Sendable>(_ arguments: [String], body: (BrokerProcess) async throws -> T) async throws -> T {
    let broker = try await BrokerProcess.start(arguments)
    defer { broker.child.killNow() }
    do {
        let result = try await body(broker)
        await broker.child.terminate(within: .seconds(5))
        return result
    } catch {
        await broker.child.terminate(within: .seconds(2))
        throw error
    }
}

extension WorkerProcess {
    /// The message ids this worker logged (every error reply is logged with its `message_id`).
    var loggedMessageIDs: Set<String> {
        Set(logs.compactMap { $0["message_id"] }.filter { $0 != "-" })
    }
}

/// Runs `body` with `count` workers started as `serve --connect` behind `broker`, once the broker
/// counts them all live; the workers are stopped afterwards, even when `body` throws.
func withConnectedWorkers<T: Sendable>(
    _ count: Int, store: String, broker: BrokerProcess, heartbeat: String = "1s",
    body: ([WorkerProcess]) async throws -> T
) async throws -> T {
    let before = broker.liveWorkers
    var workers: [WorkerProcess] = []
    defer { for worker in workers { worker.child.killNow() } }
    for _ in 0..<count {
        workers.append(
            try await WorkerProcess.start(
                BrokerProcess.workerArguments(store: store, backend: broker.backend, heartbeat: heartbeat)))
    }
    try await broker.waitForLiveWorkers(before + count)
    let result = try await body(workers)
    for worker in workers { await worker.child.terminate(within: .seconds(10)) }
    return result
}
