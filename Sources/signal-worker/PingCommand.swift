import ArgumentParser
import SignalWorker

struct PingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
        abstract: "Check that a worker answers (exit 0) or not (exit 1), for scripts and load balancers.")

    @Option(help: "The worker's endpoint. [env: SIGNAL_WORKER_CONNECT]")
    var connect: String = EnvironmentDefault.string("SIGNAL_WORKER_CONNECT", "tcp://127.0.0.1:5557")

    @Option(help: "How long to wait for the answer, in milliseconds.")
    var timeoutMs: Int = 2_000

    func run() throws {
        do {
            let result = try HealthCheck.ping(connect, timeout: .milliseconds(timeoutMs))
            print("pong from \(connect) in \(result.roundTrip)")
        } catch {
            printError("signal-worker ping: \(error)")
            throw ExitCode.failure
        }
    }
}

/// Writes a line to standard error.
func printError(_ line: String) {
    var standardError = StandardError()
    print(line, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        FileHandleOutput.standardError(string)
    }
}
