import SignalBroker
import SignalWorker
import WorkerOperations
import DRFTokenReceiver
import ProfileReceiver
import SignalInbox

/// The receivers this build of the worker can run, by their `--receivers` name: one line each.
public enum ReceiverCatalog {
    /// The names `--receivers` accepts, in the order `--help` lists them.
    public static let names = ["profile", "drf-token"]

    /// The receiver called `name`, configured from the worker's settings; `nil` for an unknown name.
    static func receiver(named name: String, _ configuration: WorkerConfiguration) -> (any PostSaveReceiver)? {
        switch name {
        case "profile":
            ProfileReceiver(
                configuration: ProfileReceiverConfiguration(
                    defaultProfileType: configuration.defaultProfileType, senderLabel: configuration.userModelLabel,
                    profileTable: configuration.profileTable, userTable: configuration.userTable))
        case "drf-token":
            DRFTokenReceiver(
                configuration: DRFTokenReceiver.Configuration(
                    senderLabel: configuration.userModelLabel, userTable: configuration.userTable))
        default:
            nil
        }
    }

    /// The inbox running the configured receivers, in the configured (connection) order.
    public static func inbox(_ configuration: WorkerConfiguration) throws(WorkerError) -> Inbox {
        try check(configuration.receivers)
        return Inbox(receivers: configuration.receivers.compactMap { receiver(named: $0, configuration) })
    }

    /// Throws unless `requested` names known receivers, at least one, each once.
    static func check(_ requested: [String]) throws(WorkerError) {
        for name in requested where !names.contains(name) {
            throw WorkerError(
                .configuration,
                "--receivers: unknown receiver \(name.debugDescription); this worker has \(names.joined(separator: ", "))")
        }
        guard !requested.isEmpty else {
            throw WorkerError(.configuration, "--receivers is empty; name at least one of \(names.joined(separator: ", "))")
        }
        guard Set(requested).count == requested.count else {
            throw WorkerError(.configuration, "--receivers names a receiver twice: \(requested.joined(separator: ","))")
        }
    }
}
