import ArgumentParser
import Foundation
import Logging
import SignalStoreSQLite
import SignalBroker
import SignalWorker
import WorkerOperations

/// Where Django's data is: shared by `serve` and `check`.
struct StoreOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Django's database: sqlite:///abs/path/db.sqlite3, a relative path, or postgres://user[:password]@host:port/db. [env: SIGNAL_WORKER_STORE]",
            valueName: "url"))
    var store: String = EnvironmentDefault.string("SIGNAL_WORKER_STORE", "db.sqlite3")

    @Option(
        help: ArgumentHelp(
            "The receivers to run on each user post_save, comma-separated, in your Django project's connection order: profile (the UserProfile receiver), drf-token (Django REST framework's Token.objects.create). Each one's tables are checked at start. [env: SIGNAL_WORKER_RECEIVERS]",
            valueName: "names"))
    var receivers: String = EnvironmentDefault.string("SIGNAL_WORKER_RECEIVERS", "profile")

    @Option(help: "Django's profile table. [env: SIGNAL_WORKER_PROFILE_TABLE]")
    var profileTable: String = EnvironmentDefault.string("SIGNAL_WORKER_PROFILE_TABLE", "accounts_userprofile")

    @Option(help: "Django's user table, the target of the profile's foreign key. [env: SIGNAL_WORKER_USER_TABLE]")
    var userTable: String = EnvironmentDefault.string("SIGNAL_WORKER_USER_TABLE", "auth_user")

    @Option(
        help: "The shim's outbox table (python-bridge's OutboxMessage). When it is there, the worker answers outbox_check itself: a sync save() then skips its backlog query. Missing: outbox_check is refused as unsupported and the shim runs the query. [env: SIGNAL_WORKER_OUTBOX_TABLE]"
    )
    var outboxTable: String = EnvironmentDefault.string("SIGNAL_WORKER_OUTBOX_TABLE", "signal_bridge_outbox")

    @Flag(
        help: "Create the Django-compatible tables if missing, for trying the worker without Django. Never use it on a Django database: run its migrations. [env: SIGNAL_WORKER_CREATE_SCHEMA=1]"
    )
    var createSchema: Bool = EnvironmentDefault.flag("SIGNAL_WORKER_CREATE_SCHEMA")

    @Option(
        help: ArgumentHelp(
            "SQLite only: FULL syncs every commit (an acknowledged message survives power loss); NORMAL syncs at checkpoints (faster; the last commits may roll back on power loss, never corrupt). Batches of messages sent with \"durable\": false (the shim's async and outbox messages) commit with NORMAL either way. [env: SIGNAL_WORKER_SQLITE_SYNCHRONOUS]",
            valueName: "full|normal"))
    var sqliteSynchronous: String = EnvironmentDefault.string("SIGNAL_WORKER_SQLITE_SYNCHRONOUS", "full")

    @Option(
        help: "SQLite only: milliseconds a write waits for another connection's lock (Django's) before the batch is answered store_unavailable (retryable). [env: SIGNAL_WORKER_SQLITE_BUSY_TIMEOUT_MS]"
    )
    var sqliteBusyTimeoutMs: Int = EnvironmentDefault.int("SIGNAL_WORKER_SQLITE_BUSY_TIMEOUT_MS", 5_000)

    func apply(to configuration: inout WorkerConfiguration) throws {
        guard sqliteBusyTimeoutMs >= 0 else { throw ValidationError("--sqlite-busy-timeout-ms must not be negative") }
        configuration.sqliteBusyTimeout = .milliseconds(sqliteBusyTimeoutMs)
        guard let synchronous = SQLiteStoreConfiguration.Synchronous(rawValue: sqliteSynchronous.uppercased()) else {
            throw ValidationError("--sqlite-synchronous must be full or normal, not \(sqliteSynchronous)")
        }
        configuration.sqliteSynchronous = synchronous
        do {
            configuration.store = try StoreLocation(parsing: store)
        } catch {
            throw ValidationError(error.message)
        }
        configuration.receivers = receivers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        do {
            try ReceiverCatalog.check(configuration.receivers)
        } catch {
            throw ValidationError(error.message)
        }
        configuration.profileTable = profileTable
        configuration.userTable = userTable
        configuration.outboxTable = outboxTable
        configuration.createSchema = createSchema
    }
}

/// Logging switches.
struct LoggingOptions: ParsableArguments {
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(help: "Log format: text or json (one object per line). [env: SIGNAL_WORKER_LOG_FORMAT]")
    var logFormat: Format = Format(rawValue: EnvironmentDefault.string("SIGNAL_WORKER_LOG_FORMAT", "text")) ?? .text

    @Option(help: "Lowest level logged: trace, debug, info, notice, warning, error, critical. [env: SIGNAL_WORKER_LOG_LEVEL]")
    var logLevel: String = EnvironmentDefault.string("SIGNAL_WORKER_LOG_LEVEL", "info")

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error, critical")
        }
    }

    /// Bootstraps swift-log once and returns the worker's logger.
    func bootstrap() -> Logger {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        let format = logFormat
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                format == .json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "signal-worker")
    }
}

/// A duration on the command line or in a variable: `250ms`, `1s`, `1.5s`, or a bare number of seconds.
struct DurationArgument: ExpressibleByArgument, CustomStringConvertible, Sendable {
    /// The value.
    var duration: Duration

    /// Wraps a value.
    init(_ duration: Duration) {
        self.duration = duration
    }

    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        let number: Substring
        let millisecondsPerUnit: Double
        if text.hasSuffix("ms") {
            (number, millisecondsPerUnit) = (text.dropLast(2), 1)
        } else if text.hasSuffix("s") {
            (number, millisecondsPerUnit) = (text.dropLast(1), 1_000)
        } else {
            (number, millisecondsPerUnit) = (text[...], 1_000)
        }
        guard let value = Double(number), value.isFinite, value >= 0, value * millisecondsPerUnit < 1e12 else { return nil }
        duration = .milliseconds(Int64((value * millisecondsPerUnit).rounded()))
    }

    /// `250ms`, `1s`, `1.5s`.
    var description: String {
        let milliseconds = duration.components.seconds * 1_000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds % 1_000 == 0 { return "\(milliseconds / 1_000)s" }
        return milliseconds > 1_000 ? "\(Double(milliseconds) / 1_000)s" : "\(milliseconds)ms"
    }
}
