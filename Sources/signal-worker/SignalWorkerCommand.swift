import ArgumentParser
import SignalBroker
import SignalWorker
import WorkerOperations

@main
struct SignalWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signal-worker",
        abstract: "Runs Django post_save receivers outside Django: requests over ZeroMQ, writes to Django's database.",
        discussion: """
            Quick start, next to a Django project that ran `python manage.py migrate`:

              signal-worker serve --store sqlite:///path/to/db.sqlite3

            Several workers: `signal-worker broker` in front, workers started with \
            `serve --connect tcp://BROKER:5558` (see `signal-worker broker --help`).

            Every option can also come from an environment variable, shown as [env: NAME]; \
            a command-line option wins over the variable. Wire protocol: docs/PROTOCOL.md.
            """,
        version: SignalWorkerVersion.current,
        subcommands: [ServeCommand.self, BrokerCommand.self, CheckCommand.self, PingCommand.self, KeygenCommand.self, VersionCommand.self],
        defaultSubcommand: nil)
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "version", abstract: "Print the worker's version and the libzmq it runs on.")

    func run() {
        print("signal-worker \(SignalWorkerVersion.current) (wire protocol v1, \(RuntimeInfo.zeroMQDescription))")
    }
}
