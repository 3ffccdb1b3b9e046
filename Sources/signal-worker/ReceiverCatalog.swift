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
        var receivers: [any PostSaveReceiver] = []
        for name in configuration.receivers {
            guard let receiver = receiver(named: name, configuration) else {
                throw WorkerError(
                    .configuration,
                    "--receivers: unknown receiver \(name.debugDescription); this worker has \(names.joined(separator: ", "))")
            }
            receivers.append(receiver)
        }
        guard !receivers.isEmpty else {
            throw WorkerError(.configuration, "--receivers is empty; name at least one of \(names.joined(separator: ", "))")
        }
        guard Set(configuration.receivers).count == configuration.receivers.count else {
            throw WorkerError(.configuration, "--receivers names a receiver twice: \(configuration.receivers.joined(separator: ","))")
        }
        return Inbox(receivers: receivers)
    }
}
