import WorkerOperations
import SignalInbox
import SignalProtocol

/// The worker's inbox bound to its store: what the socket thread validates requests with and
/// the apply loop applies batches through.
public struct ReceiverRegistry: Sendable {
    /// A request validated by the inbox, as the queue keeps it.
    public struct Prepared: Sendable {
        /// The validated message.
        public var message: InboxMessage
        /// The message as the retry holds see it: id, `seq` and object (sender, pk).
        public var holdReference: RetryHolds.Message {
            RetryHolds.Message(id: message.id, sequence: message.sequence, object: message.object)
        }
    }

    /// The receivers, with exactly once and ordering.
    public let inbox: Inbox
    /// Where they write.
    public let store: any SignalStore

    /// Binds an inbox to a store.
    public init(inbox: Inbox, store: any SignalStore) {
        self.inbox = inbox
        self.store = store
    }

    /// The handled (signal, sender) pairs with their receivers, for the start-up log.
    public var routesDescription: String {
        inbox.routes.map { "\($0.key) -> \($0.receivers.joined(separator: ","))" }.joined(separator: " ")
    }

    /// Validates an envelope with the receivers of its (signal, sender).
    public func prepare(_ envelope: SignalEnvelope) throws(ReplyError) -> Prepared {
        Prepared(message: try inbox.prepare(envelope))
    }

    /// Applies a batch (any mix of receivers) in one transaction, one outcome per message.
    public func apply(_ messages: [InboxMessage]) async -> [Reply.Outcome] {
        await inbox.apply(messages, to: store)
    }
}
