import ArgumentParser
import SignalBroker
import SignalWorker
import WorkerOperations
import ZeroMQ

struct KeygenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keygen",
        abstract: "Create a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public).",
        discussion: """
            One pair for the worker, one per client (the Django shim):

              signal-worker keygen --name worker --directory /etc/signal-worker
              signal-worker keygen --name django --directory /etc/signal-worker/clients
              signal-worker serve --curve-secret-key-file /etc/signal-worker/worker.key \\
                                  --curve-allowed-clients /etc/signal-worker/clients

            The shim needs its own django.key and the worker's worker.pub; the worker needs \
            the clients' *.pub files only. Existing files are never overwritten.
            """)

    @Option(help: "File name of the pair, without extension.")
    var name: String

    @Option(help: "Where to write the files.")
    var directory: String = "."

    func run() throws {
        do {
            let pair = try CurveKeyFiles.generate(name: name, directory: directory)
            print("secret key: \(directory)/\(name).key (mode 0600, keep it private)")
            print("public key: \(directory)/\(name).pub  \(pair.publicKey.z85)")
        } catch {
            printError("signal-worker keygen: \(error.message)")
            throw ExitCode.failure
        }
    }
}
