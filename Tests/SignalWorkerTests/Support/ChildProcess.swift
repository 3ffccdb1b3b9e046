import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process whose standard output and error are collected line by line by two reader threads.
///
/// It is killed (SIGKILL) when the object goes away while it still runs, so a failing test never
/// leaves a worker behind; tests normally end it themselves with ``terminate(within:)``.
final class ChildProcess: Sendable {
    /// How the process ended.
    struct Exit: Sendable, Equatable, CustomStringConvertible {
        /// Exit status, or the signal number when `signalled`.
        var status: Int32
        /// Killed by a signal rather than exiting.
        var signalled: Bool

        var description: String { signalled ? "killed by signal \(status)" : "exit \(status)" }
    }

    /// Which stream of the child.
    enum Stream: Sendable { case standardOutput, standardError }

    private let process: Process
    private let output = OutputBox()
    /// The arguments it was started with (for messages).
    let commandLine: String

    private struct Output {
        var stdout = LineBuffer()
        var stderr = LineBuffer()
        /// When Foundation saw the child exit (its termination handler, which runs on a dispatch
        /// queue: not delayed when the tests keep the cooperative threads busy).
        var exitedAt: ContinuousClock.Instant?
    }

    /// Shared with the reader threads (which must not keep the `ChildProcess` alive).
    private final class OutputBox: Sendable {
        private let state = Mutex(Output())
        func withLock<T>(_ body: (inout Output) -> T) -> T { state.withLock { body(&$0) } }
    }

    /// Starts `executable` with `arguments`; the environment is this process's without any
    /// `SIGNAL_WORKER_*` variable (a developer's settings must not leak into tests), plus `environment`.
    init(_ executable: URL, _ arguments: [String], environment: [String: String] = [:]) throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var childEnvironment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SIGNAL_WORKER_") }
        childEnvironment.merge(environment) { _, new in new }
        process.environment = childEnvironment
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        self.process = process
        self.commandLine = ([executable.lastPathComponent] + arguments).joined(separator: " ")
        let output = self.output
        process.terminationHandler = { _ in output.withLock { $0.exitedAt = .now } }
        try process.run()
        startReader(stdout.fileHandleForReading, .standardOutput)
        startReader(stderr.fileHandleForReading, .standardError)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// The child's pid.
    var pid: Int32 { process.processIdentifier }

    /// Whether it still runs.
    var isRunning: Bool { process.isRunning }

    /// The names of the child's threads, as `top -H` and `perf` show them (`/proc/<pid>/task/*/comm`).
    func threadNames() throws -> [String] {
        let tasks = "/proc/\(pid)/task"
        return try FileManager.default.contentsOfDirectory(atPath: tasks).compactMap { task in
            try? String(contentsOfFile: "\(tasks)/\(task)/comm", encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// When the child exited, as seen by Foundation's termination handler (`nil` while it runs):
    /// for timing an exit without counting how late a polling test task woke up.
    var exitedAt: ContinuousClock.Instant? { output.withLock { $0.exitedAt } }

    /// Complete lines written so far to `stream`.
    func lines(_ stream: Stream) -> [String] {
        output.withLock { stream == .standardOutput ? $0.stdout.lines : $0.stderr.lines }
    }

    /// Everything written so far to `stream` (including an unterminated last line).
    func text(_ stream: Stream) -> String {
        output.withLock { stream == .standardOutput ? $0.stdout.text : $0.stderr.text }
    }

    /// Whether the reader of `stream` saw end of file.
    func isClosed(_ stream: Stream) -> Bool {
        output.withLock { stream == .standardOutput ? $0.stdout.closed : $0.stderr.closed }
    }

    /// The last `count` lines of standard error, for failure messages.
    func stderrTail(_ count: Int = 30) -> String {
        lines(.standardError).suffix(count).joined(separator: "\n")
    }

    /// Sends `signal` to the child.
    func send(signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits until the child exits; `nil` if it still runs after `timeout`.
    func waitForExit(timeout: Duration) async -> Exit? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
        // Let the readers drain what the child wrote last.
        let drainDeadline = ContinuousClock.now + .seconds(2)
        while !(isClosed(.standardOutput) && isClosed(.standardError)), ContinuousClock.now < drainDeadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        return ended
    }

    /// How it ended, once it did (`nil` while it runs).
    var ended: Exit? {
        guard !process.isRunning else { return nil }
        return Exit(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal)
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`; returns how it ended.
    @discardableResult
    func terminate(within grace: Duration = .seconds(10)) async -> Exit? {
        send(signal: SIGTERM)
        if let exit = await waitForExit(timeout: grace) { return exit }
        send(signal: SIGKILL)
        return await waitForExit(timeout: .seconds(5))
    }

    /// SIGKILL now, without waiting (for `defer`).
    func killNow() {
        send(signal: SIGKILL)
    }

    private func startReader(_ handle: FileHandle, _ stream: Stream) {
        let descriptor = handle.fileDescriptor
        let thread = Thread { [output] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                let chunk = Array(buffer[0..<count])
                output.withLock { output in
                    if stream == .standardOutput { output.stdout.append(chunk) } else { output.stderr.append(chunk) }
                }
            }
            output.withLock { output in
                if stream == .standardOutput { output.stdout.close() } else { output.stderr.close() }
            }
            try? handle.close()
        }
        thread.name = "child-\(stream)"
        thread.start()
    }
}

/// Bytes split into lines as they arrive.
private struct LineBuffer {
    private(set) var lines: [String] = []
    private var partial: [UInt8] = []
    private(set) var closed = false

    var text: String {
        (lines.map { $0 + "\n" }.joined()) + String(decoding: partial, as: UTF8.self)
    }

    mutating func append(_ bytes: [UInt8]) {
        var start = 0
        for index in bytes.indices where bytes[index] == 0x0A {
            partial += bytes[start..<index]
            lines.append(String(decoding: partial, as: UTF8.self))
            partial.removeAll(keepingCapacity: true)
            start = index + 1
        }
        partial += bytes[start...]
    }

    mutating func close() {
        if !partial.isEmpty {
            lines.append(String(decoding: partial, as: UTF8.self))
            partial.removeAll()
        }
        closed = true
    }
}

/// The result of running a command to completion.
struct CommandResult: Sendable {
    var exit: ChildProcess.Exit
    var stdout: String
    var stderr: String
    var duration: Duration

    /// Both streams, for `contains` checks that do not care where a message went.
    var output: String { stdout + stderr }
}

extension ChildProcess {
    /// Runs `signal-worker` with `arguments` to completion (killed after `timeout`).
    static func runWorkerCommand(
        _ arguments: [String], environment: [String: String] = [:], timeout: Duration = .seconds(30)
    ) async throws -> CommandResult {
        let started = ContinuousClock.now
        let child = try ChildProcess(try TestEnvironment.workerBinary(), arguments, environment: environment)
        defer { child.killNow() }
        guard let exit = await child.waitForExit(timeout: timeout) else {
            throw TestFailure(
                "`\(child.commandLine)` did not finish within \(timeout); stderr:\n\(child.stderrTail())")
        }
        return CommandResult(
            exit: exit, stdout: child.text(.standardOutput), stderr: child.text(.standardError),
            duration: started.duration(to: .now))
    }
}
