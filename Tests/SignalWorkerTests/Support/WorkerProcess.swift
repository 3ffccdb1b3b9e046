import Foundation

/// A running `signal-worker serve` child with JSON logs, and the endpoints it logged.
///
/// Use ``withWorker(_:environment:body:)``: it always ends the child, whatever the test does.
struct WorkerProcess: Sendable {
    /// The child process.
    let child: ChildProcess
    /// The ROUTER endpoint from the "listening" log line (`*` resolved to the real port).
    let endpoint: String
    /// The metrics URL from the "metrics endpoint listening" log line, when `--metrics-bind` was given.
    let metricsURL: String?

    /// The child's pid.
    var pid: Int32 { child.pid }

    /// The standard `serve` arguments for a store: a free port, free metrics port, JSON logs.
    static func serveArguments(store: String, metrics: Bool = true, extra: [String] = []) -> [String] {
        var arguments = ["serve", "--store", store, "--bind", "tcp://127.0.0.1:*", "--log-format", "json"]
        if metrics { arguments += ["--metrics-bind", "127.0.0.1:0"] }
        return arguments + extra
    }

    /// Starts `signal-worker` with `arguments` and waits (up to `timeout`) for its "listening" line,
    /// and for "metrics endpoint listening" when `--metrics-bind` is among the arguments or the environment.
    /// `openFilesLimit` starts it under `ulimit -n` (through `/bin/sh`, which `exec`s it: same pid).
    static func start(
        _ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(20),
        openFilesLimit: Int? = nil
    ) async throws -> WorkerProcess {
        let binary = try TestEnvironment.workerBinary()
        let child =
            if let openFilesLimit {
                try ChildProcess(
                    URL(fileURLWithPath: "/bin/sh"),
                    ["-c", "ulimit -n \(openFilesLimit) && exec \"$0\" \"$@\"", binary.path] + arguments,
                    environment: environment)
            } else {
                try ChildProcess(binary, arguments, environment: environment)
            }
        let wantsMetrics = arguments.contains("--metrics-bind") || environment["SIGNAL_WORKER_METRICS_BIND"] != nil
        let deadline = ContinuousClock.now + timeout
        while true {
            let logs = LogLine.parse(child.lines(.standardError))
            let endpoint = logs.first { $0.message == "listening" }?["endpoint"]
            let metricsURL = logs.first { $0.message == "metrics endpoint listening" }?["url"]
            if let endpoint, !wantsMetrics || metricsURL != nil {
                return WorkerProcess(child: child, endpoint: endpoint, metricsURL: metricsURL)
            }
            if let ended = child.ended {
                _ = await child.waitForExit(timeout: .seconds(1))
                throw TestFailure(
                    "`\(child.commandLine)` ended (\(ended)) before it listened; stderr:\n\(child.stderrTail())")
            }
            if ContinuousClock.now >= deadline {
                child.killNow()
                throw TestFailure(
                    "`\(child.commandLine)` logged no \"listening\" line (with `endpoint`)\(wantsMetrics ? " and \"metrics endpoint listening\" (with `url`)" : "") within \(timeout); stderr:\n\(child.stderrTail())"
                )
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The JSON log lines so far (lines that are not JSON are kept as `msg`).
    var logs: [LogLine] { LogLine.parse(child.lines(.standardError)) }

    /// The TCP port of the ROUTER endpoint.
    var port: Int? { endpoint.split(separator: ":").last.flatMap { Int($0) } }
}

/// Runs `body` with a worker started from `arguments`; the worker is stopped (SIGTERM, then SIGKILL)
/// afterwards, even when `body` throws.
func withWorker<T: Sendable>(
    _ arguments: [String], environment: [String: String] = [:],
    body: (WorkerProcess) async throws -> T
) async throws -> T {
    let worker = try await WorkerProcess.start(arguments, environment: environment)
    defer { worker.child.killNow() }
    do {
        let result = try await body(worker)
        await worker.child.terminate(within: .seconds(10))
        return result
    } catch {
        await worker.child.terminate(within: .seconds(2))
        throw error
    }
}

/// One line of `--log-format json` output.
struct LogLine: Sendable, CustomStringConvertible {
    /// Every key, values as strings.
    var fields: [String: String]

    /// `msg`.
    var message: String { fields["msg"] ?? "" }
    /// `level`.
    var level: String { fields["level"] ?? "" }

    subscript(key: String) -> String? { fields[key] }

    var description: String { fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }

    /// Parses JSON lines; a line that is not a JSON object becomes `{"msg": line, "level": "raw"}`.
    static func parse(_ lines: [String]) -> [LogLine] {
        lines.map { line in
            guard let data = line.data(using: .utf8),
                let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
            else { return LogLine(fields: ["msg": line, "level": "raw"]) }
            return LogLine(fields: object.mapValues { "\($0)" })
        }
    }
}
