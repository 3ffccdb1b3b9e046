import ArgumentParser
import Logging
import SignalBroker
import SignalWorker
import WorkerOperations

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Verify that Django's database has the schema the worker needs; create or upgrade the worker's own tables and print their schema version.",
        discussion: "Exit status: 0 when the schema is right, 2 when something is wrong (each problem is printed), 1 when the database cannot be reached.")

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let logger = logging.bootstrap()
        var configuration = WorkerConfiguration()
        try storeOptions.apply(to: &configuration)
        do {
            let opened = try OpenedStore.open(configuration, logger: logger)
            let configuration = configuration
            let location = configuration.store
            let creating = configuration.createSchema
            let prepared = try await opened.withRunning { store in
                try await StorePreparation.prepare(store, configuration: configuration, logger: logger)
            }
            print("\(location): schema OK\(creating ? " (missing tables created)" : "")")
            print("\(location): \(prepared.workerTables)")
            if let why = prepared.outboxCheckUnavailable {
                print("\(location): outbox_check off (\(why))")
            } else {
                print("\(location): outbox_check on (table \(configuration.outboxTable))")
            }
        } catch let error as WorkerError {
            printError(error.message)
            throw error.code == .schema ? ExitCode(2) : ExitCode.failure
        }
    }
}
