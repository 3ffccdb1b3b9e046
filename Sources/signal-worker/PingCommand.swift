import ArgumentParser
import SignalBroker
import SignalWorker
import WorkerOperations

struct PingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ping",
        abstract: "Check that a worker answers (exit 0) or not (exit 1), for scripts and load balancers.")

    @Option(help: "The worker's endpoint. [env: SIGNAL_WORKER_CONNECT]")
    var connect: String = EnvironmentDefault.string("SIGNAL_WORKER_CONNECT", "tcp://127.0.0.1:5557")

    @Option(help: "How long to wait for the answer, in milliseconds.")
    var timeoutMs: Int = 2_000

    @Option(
        help: ArgumentHelp(
            "CURVE: this client's secret key file (its public key must be among the worker's allowed clients). [env: SIGNAL_WORKER_PING_CURVE_SECRET_KEY_FILE]",
            valueName: "path"))
    var curveSecretKeyFile: String = EnvironmentDefault.string("SIGNAL_WORKER_PING_CURVE_SECRET_KEY_FILE", "")

    @Option(
        help: ArgumentHelp(
            "CURVE: the worker's public key file (worker.pub). [env: SIGNAL_WORKER_PING_CURVE_SERVER_KEY_FILE]",
            valueName: "path"))
    var curveServerKeyFile: String = EnvironmentDefault.string("SIGNAL_WORKER_PING_CURVE_SERVER_KEY_FILE", "")

    func validate() throws {
        guard curveSecretKeyFile.isEmpty == curveServerKeyFile.isEmpty else {
            throw ValidationError("CURVE needs both --curve-secret-key-file and --curve-server-key-file")
        }
    }

    func run() throws {
        do {
            var curve: HealthCheck.CurveClient?
            if !curveSecretKeyFile.isEmpty {
                curve = HealthCheck.CurveClient(
                    clientKeys: try CurveKeyFiles.readKeyPair(secretKeyFile: curveSecretKeyFile),
                    serverKey: try CurveKeyFiles.readPublicKey(curveServerKeyFile))
            }
            let result = try HealthCheck.ping(connect, timeout: .milliseconds(timeoutMs), curve: curve)
            print("pong from \(connect) in \(result.roundTrip.millisecondsText)")
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
